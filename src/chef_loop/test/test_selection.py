"""The explore stage's held-out split for offline scoring: disjoint, stable across growing data
(an episode held out once stays held out), about the configured fraction, never empty."""

from chef_loop.stages import holdout_split


def test_holdout_split_is_disjoint_stable_and_near_its_fraction():
    ids = [f'cell{i % 2}/ep_{i:05d}' for i in range(400)]
    train, held = holdout_split(ids, 0.1)
    assert set(train).isdisjoint(held) and set(train) | set(held) == set(ids)
    assert 20 <= len(held) <= 60
    train2, held2 = holdout_split(ids + [f'cell0/ep_{i:05d}' for i in range(400, 800)], 0.1)
    assert set(held) <= set(held2)                    # later iterations keep earlier hold-outs
    assert set(train) <= set(train2)


def test_holdout_split_holds_out_one_of_few_and_none_at_zero():
    train, held = holdout_split(['a', 'b'], 0.1)
    assert len(held) == 1 and len(train) == 1
    assert holdout_split(['a', 'b', 'c'], 0.0) == (['a', 'b', 'c'], [])
    assert holdout_split(['a'], 0.3) == (['a'], [])
    # every hash under the fraction (a 2-episode store at 0.2: ~4 % of runs): one still trains
    train, held = holdout_split(['a', 'b'], 1.0)
    assert len(train) == 1 and len(held) == 1
