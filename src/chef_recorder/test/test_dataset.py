"""Reader for learning: tick alignment, actions, rewards at t+1, stacking, n-step, filters, growth."""

import numpy as np
import pytest

from chef_contract import topics as T
from chef_contract.obs import FrameStacker
from chef_contract.spec import INTENTIONS, REWARD_TERMS, STATE_OBSERVATION_NAMES, image_key
from chef_recorder.dataset import Dataset, TransitionSampler
from chef_recorder.synthetic import (
    PERIOD_NS, expected_action, expected_frame, expected_intention, expected_rewards,
)
from chef_recorder.recording import EpisodeRecorder, RecorderSettings
from conftest import CAMS, FakeClock, Stream, feed, roles

T0 = 2_000 * 10**9
PX = 8


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Five sim episodes (three collect, two execute) and one aborted one (built once per module)."""
    tmp_path = tmp_path_factory.mktemp('ds')
    rec = EpisodeRecorder(RecorderSettings(data_dir=str(tmp_path / 'data'), cell='cell0', roles=roles(),
                                           fsync=False), clock=FakeClock(), background=False)
    t = T0
    for e in range(5):
        s = Stream(cameras=CAMS, image_px=PX, tags={'stage': 'collect' if e < 3 else 'execute',
                                                    'iteration': e // 3})
        if e == 0:
            s.cell.policy_info()
        t = s.episode(e, 12, t)
        feed(rec, s.take())
    s = Stream(cameras=CAMS, image_px=PX)
    s.episode(5, 4, t, end='abort')
    feed(rec, s.take())
    assert len(rec.published) == 6
    return Dataset(tmp_path / 'data')


def test_episode_arrays_are_aligned_by_tick(dataset):
    recs = dataset.query()
    assert [r.id for r in recs] == [f'ep{e:03d}' for e in range(5)]
    e = 3
    ep = dataset.load(recs[e])
    assert ep.steps == 12 and ep.valid.all() and ep.obs_ok.all()
    np.testing.assert_array_equal(ep.stamps_ns, T0 + np.arange(13) * PERIOD_NS + e * 13 * PERIOD_NS)
    for k in range(13):
        want = expected_frame(e, k, CAMS, PX)
        for key in STATE_OBSERVATION_NAMES:
            np.testing.assert_allclose(ep.frames[key][k], want[key].reshape(ep.frames[key][k].shape),
                                       rtol=1e-5, atol=1e-4, err_msg=f'{key} tick {k}')
        for cam in CAMS:
            np.testing.assert_array_equal(ep.frames[image_key(cam)][k], want[image_key(cam)])
    for k in range(12):
        np.testing.assert_allclose(ep.actions[k], expected_action(e, k), atol=1e-6)
        np.testing.assert_allclose(ep.executed_actions[k], expected_action(e, k), atol=1e-6)
        # reward of transition k = reward/terms computed on the observation after the action
        np.testing.assert_allclose(ep.reward_terms[k], expected_rewards(e, k + 1), atol=1e-6)
        assert INTENTIONS[ep.intentions[k]] == expected_intention(k)
    assert ep.reward_terms.shape == (12, len(REWARD_TERMS))
    assert ep.frames['gripper/grasp'].shape == (13, 1)
    assert ep.metadata['episode_id'] == 'ep003'


def test_query_filters_on_catalog_and_metadata_fields(dataset):
    assert len(dataset.query()) == 5
    assert len(dataset.query(complete=None)) == 6
    assert [r.id for r in dataset.query(complete=False)] == ['ep005']
    assert len(dataset.query(stage='collect')) == 3
    assert len(dataset.query(stage='execute', iteration=1)) == 2
    assert len(dataset.query(source='real')) == 0
    assert len(dataset.query(triplet=['rgb_test_triplet1', 'rgb_test_triplet2'])) == 5
    assert len(dataset.query(success=True)) == 2
    assert len(dataset.query(config_hash='c0ffee')) == 0      # tags replaced in this fixture
    assert dataset.get('ep005').metadata['status'] == 'abort'


def test_sampler_stacks_like_the_frame_stacker_and_sums_n_step_rewards(dataset):
    recs = dataset.query()
    keys = ['sawyer/joints/angle', 'gripper/grasp', 'action/environment', image_key(CAMS[0])]
    gamma = 0.9
    sampler = TransitionSampler(dataset, recs, keys, n_step=3, discount=gamma, progress=False)
    assert len(sampler) == 5 * 12
    batch = sampler.sample(64, np.random.default_rng(0))
    assert batch['obs']['sawyer/joints/angle'].shape == (64, 3, 7)
    assert batch['obs']['gripper/grasp'].shape == (64, 3)
    assert batch['obs']['action/environment'].shape == (64, 2, 8)
    assert batch['obs'][image_key(CAMS[0])].shape == (64, PX, PX, 3)
    assert batch['action'].shape == (64, 5) and batch['rewards'].shape == (64, len(REWARD_TERMS))
    for i in range(64):
        ep = sampler.episodes[batch['episode'][i]]
        e, t, n = int(ep.id[2:]), int(batch['t'][i]), int(batch['n'][i])
        assert n == min(3, 12 - t)                               # shortened at the episode end
        assert batch['discount'][i] == pytest.approx(gamma ** n)
        stacker = FrameStacker(['sawyer/joints/angle', 'gripper/grasp', 'action/environment'])
        for k in range(t + 1):
            stacked = stacker.push(expected_frame(e, k))
        for key in ('sawyer/joints/angle', 'gripper/grasp', 'action/environment'):
            np.testing.assert_allclose(batch['obs'][key][i], stacked[key], rtol=1e-5, atol=1e-4)
        for k in range(t + 1, t + n + 1):
            stacked = stacker.push(expected_frame(e, k))
        np.testing.assert_allclose(batch['next_obs']['sawyer/joints/angle'][i],
                                   stacked['sawyer/joints/angle'], rtol=1e-5, atol=1e-4)
        want = sum(gamma ** j * expected_rewards(e, t + j + 1) for j in range(n))
        np.testing.assert_allclose(batch['rewards'][i], want, rtol=1e-5)
        np.testing.assert_allclose(batch['action'][i], expected_action(e, t), atol=1e-6)
        np.testing.assert_array_equal(batch['obs'][image_key(CAMS[0])][i],
                                      expected_frame(e, t, CAMS, PX)[image_key(CAMS[0])])


def test_sampler_action_chunks_are_the_next_commands_and_stop_at_the_end_or_a_lost_tick(dataset):
    from types import SimpleNamespace
    recs = dataset.query()
    sampler = TransitionSampler(dataset, recs[:3], ['gripper/grasp'], action_horizon=4, progress=False)
    later = TransitionSampler(dataset, recs[:3], ['gripper/grasp'], progress=False)
    assert 'action_chunk' not in later.sample(4, np.random.default_rng(0))
    later.set_action_horizon(4)                    # a learner asks for chunks after construction
    for s in (sampler, later):
        b = s.sample(64, np.random.default_rng(2))
        assert b['action_chunk'].shape == (64, 4, 5) and b['chunk_mask'].shape == (64, 4)
        for i in range(64):
            e, t = int(s.episodes[b['episode'][i]].id[2:]), int(b['t'][i])
            np.testing.assert_allclose(b['action_chunk'][i, 0], b['action'][i])
            for h in range(4):
                assert b['chunk_mask'][i, h] == (t + h < 12)
                if t + h < 12:
                    np.testing.assert_allclose(b['action_chunk'][i, h], expected_action(e, t + h), atol=1e-6)
    later.set_action_horizon(2)                    # shorter: the longer chunks stay
    assert later.sample(2, np.random.default_rng(0))['action_chunk'].shape == (2, 4, 5)
    # a lost tick (valid False at 3) ends every chunk that would span it
    ep = SimpleNamespace(valid=np.array([1, 1, 1, 0, 1, 1], bool), actions=np.arange(30, dtype=np.float32).reshape(6, 5))
    chunk, mask = sampler._action_chunks(ep, np.array([0, 2, 4]))
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(chunk[0, :3], ep.actions[:3])
    with pytest.raises(ValueError, match='action_horizon'):
        TransitionSampler(dataset, recs, ['gripper/grasp'], action_horizon=0)


def test_sampler_resizes_images_and_grows_with_new_episodes(dataset):
    recs = dataset.query()
    sampler = TransitionSampler(dataset, recs[:2], [image_key(CAMS[1]), 'wrist/force'], image_size=4,
                                progress=False)
    assert len(sampler) == 24
    b = sampler.sample(8, np.random.default_rng(1))
    assert b['obs'][image_key(CAMS[1])].shape == (8, 4, 4, 3) and b['obs']['wrist/force'].shape == (8, 3, 3)
    assert sampler.add_episodes(recs) == 3 and len(sampler) == 60
    assert sampler.add_episodes(recs) == 0
    with pytest.raises(KeyError, match='unknown observation keys'):
        TransitionSampler(dataset, recs, ['no/such/key'])


def test_cache_is_derived_and_rebuilt_when_the_bag_changes(dataset):
    rec = dataset.query()[0]
    ep = dataset.load(rec)
    cache = ep.cache_dir
    assert (cache / 'state.npy').is_file() and not ep.state.flags['OWNDATA']        # a memory map
    assert not ep.frames[image_key(CAMS[0])].flags['WRITEABLE']
    (cache / 'meta.json').write_text('{"decoder": 0}')            # stale or damaged cache
    ep2 = dataset.load(rec)
    assert ep2.layout['decoder'] > 0 and ep2.steps == 12


def test_a_second_build_of_a_current_cache_leaves_the_open_one_in_place(dataset):
    """Two trainers decoding the same bag at once: the later build must not move the current cache
    away under a reader that already opened it (it would lose files between meta.json and arrays)."""
    import os
    from chef_recorder.decode import build_cache
    rec = dataset.query()[1]
    ep = dataset.load(rec)
    inode = os.stat(ep.cache_dir).st_ino
    build_cache(rec.path, ep.cache_dir)                 # what the concurrent builder does
    assert os.stat(ep.cache_dir).st_ino == inode
    assert [p.name for p in ep.cache_dir.parent.iterdir() if p.name.startswith('.')] == []
    assert dataset.load(rec).steps == ep.steps == 12
    assert os.stat(dataset.load(rec, rebuild=True).cache_dir).st_ino != inode     # asked for: replaced


def test_asynchronous_sensors_align_to_the_latest_sample_before_the_command(make_recorder, tmp_path):
    """Real cells: sensors are not stamped with the tick; each tick takes the newest sample at or
    before the command stamp (within one period)."""
    from chef_recorder.synthetic import CellPublisher
    rec = make_recorder()
    s = Stream(cameras=(), image_px=PX)
    cell: CellPublisher = s.cell
    cell.source = 'real'
    t0 = 3_000 * 10**9
    cell.event('start', 'real0', 0, t0)
    jitter = [0, 13, 7, 31, 2, 20, 44]                             # ms before the command stamp
    for k in range(7):
        tick = t0 + k * PERIOD_NS
        cell.observation(0, 100 + k, tick - jitter[k] * 10**6)     # sensor sample (marker 100 + k)
        cell.observation(0, 200 + k, tick + 5 * 10**6)             # a newer sample after the command
        if k < 6:
            cell.command(0, k, tick)
    cell.event('end', 'real0', 0, t0 + 6 * PERIOD_NS, steps=6)
    feed(rec, s.take())
    ds = Dataset(tmp_path / 'data')
    ep = ds.load(ds.get('real0'))
    assert ep.steps == 6
    np.testing.assert_array_equal(ep.frames['sawyer/joints/angle'][:, 0], 100 + np.arange(7))
    assert ep.metadata['source'] == 'real'


def test_non_finite_values_are_kept_in_the_bag_but_never_sampled(make_recorder, tmp_path):
    """NaN in a policy command or an observation: the bag keeps the data as sent, the reader marks
    the affected transitions invalid and the sampler never returns them."""
    from chef_recorder.synthetic import PERIOD_NS as P
    rec = make_recorder()
    s = Stream(cameras=(), image_px=PX)
    t0 = 9_000 * 10**9
    s.cell.event('start', 'nan0', 0, t0)
    sink = s.cell.sink

    def poison(name, msg):
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec if hasattr(msg, 'header') else None
        if name == T.POLICY_TWIST and stamp == t0 + 2 * P:
            msg.twist.linear.x = float('nan')
        if name == T.JOINT_STATES and stamp == t0 + 5 * P:
            msg.position[3] = float('nan')
        sink(name, msg)
    s.cell.sink = poison
    for k in range(9):
        s.cell.observation(0, k, t0 + k * P)
        if k < 8:
            s.cell.command(0, k, t0 + k * P)
    s.cell.event('end', 'nan0', 0, t0 + 8 * P, steps=8)
    feed(rec, s.take())
    ds = Dataset(tmp_path / 'data')
    ep = ds.load('nan0')
    assert ep.steps == 8
    assert list(np.flatnonzero(~np.asarray(ep.valid))) == [2, 4, 5]      # NaN action; NaN obs at tick 5
    assert not ep.obs_ok[5] and np.all(np.isfinite(ep.state))
    sampler = TransitionSampler(ds, [ds.get('nan0')], ['sawyer/joints/angle'], n_step=2, progress=False)
    batch = sampler.sample(200, np.random.default_rng(0))
    assert set(batch['t'].tolist()) == {0, 1, 3, 6, 7}
    assert np.all(np.isfinite(batch['action'])) and np.all(np.isfinite(batch['next_obs']['sawyer/joints/angle']))
    assert batch['n'][batch['t'] == 1].max() == 1 and batch['n'][batch['t'] == 6].max() == 2
