"""RGB-object sets and triplet samplers against the benchmark's own lists (spec §B.12)."""

import numpy as np
import pytest

from chef_contract.spec import TEST_TRIPLETS
from chef_sim import assets as A


def test_object_counts():
    sets = A.object_sets()
    assert len(sets['all']) == 152
    assert len(sets['train']) == 103
    assert len(sets['heldout']) == 49          # 36 held-out meshes + 13 test objects
    assert len(sets['test']) == 13
    assert not set(sets['train']) & set(sets['heldout'])
    assert set(sets['test']) <= set(sets['heldout'])


def test_sets_equal_dm_robotics_lists():
    """Derived from the mesh folders; must be exactly rgb_object's sets (slow import, ~2 s)."""
    from dm_robotics.manipulation.props.rgb_objects import rgb_object
    sets = A.object_sets()
    assert set(sets['all']) == set(rgb_object.RGB_OBJECTS_FULL_SET)
    assert set(sets['train']) == set(rgb_object.RGB_OBJECTS_TRAIN_SET)
    assert set(sets['heldout']) == set(rgb_object.RGB_OBJECTS_HELDOUT_SET)
    assert set(sets['test']) == set(rgb_object.RGB_OBJECTS_TEST_SET)
    for name, triplet in TEST_TRIPLETS.items():
        assert tuple(rgb_object.PROP_TRIPLETS_TEST[name].ids) == triplet


def test_samplers_are_seeded_and_draw_from_their_set():
    sets = A.object_sets()
    for name, pool in (('rgb_train_random', sets['train']), ('rgb_heldout_random', sets['heldout'])):
        a = [A.sample_triplet(name, np.random.default_rng(7)) for _ in range(3)]
        b = [A.sample_triplet(name, np.random.default_rng(7)) for _ in range(3)]
        assert a == b
        draws = [A.sample_triplet(name, np.random.default_rng(s)) for s in range(200)]
        assert all(i in pool for t in draws for i in t)
        assert len({t for t in draws}) > 150              # independent draws, not a fixed list
    tests = {A.sample_triplet('rgb_test_random', np.random.default_rng(s)) for s in range(100)}
    assert tests == set(TEST_TRIPLETS.values())
    assert A.sample_triplet('rgb_test_triplet4', np.random.default_rng(0)) == ('s0', 'g5', 'b6')


def test_parse_triplet_explicit_and_errors():
    assert A.parse_triplet('r3, s0 ,b2', np.random.default_rng()) == ('r3', 's0', 'b2')
    with pytest.raises(ValueError):
        A.parse_triplet('r3,s0,zz9', np.random.default_rng())
    with pytest.raises(ValueError, match='unknown triplet'):
        A.parse_triplet('rgb_test_triplet9', np.random.default_rng())
