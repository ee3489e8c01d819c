"""The trainer's data feed over bags written by the real recorder core, and the learner configs."""

from pathlib import Path

import numpy as np
import pytest

from chef_contract.config import ConfigError
from chef_trainer.config import default_config_dir, load_learner_config
from chef_trainer.feed import DataFeed
from chef_trainer.learners import make_learner
from chef_trainer.offline import make_sampler, train_offline
from recorded import record_synthetic_episodes

KEYS = ('sawyer/joints/angle', 'gripper/grasp', 'action/environment')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('feed') / 'data'
    assert record_synthetic_episodes(d, 0, 3, 15) == 3
    return d


def test_live_replay_stacks_exactly_like_the_recorders_sampler(data_dir, tmp_path):
    feed = DataFeed(str(data_dir), KEYS, n_step=3, discount=0.9, live_fraction=0.5,
                    include_existing_in_live=True)
    assert feed.episodes == 3 and feed.live_episodes == 3 and len(feed) == 45
    rng = np.random.default_rng(0)
    b = feed.all_data.sample(64, rng)
    # the same (episode, tick) in the live replay: episode e occupies frames e*16 .. e*16+15
    idx = b['episode'] * 16 + b['t']
    live = feed.live.gather(idx)
    for k in KEYS:
        np.testing.assert_allclose(live['obs'][k], b['obs'][k], atol=1e-6, err_msg=k)
        np.testing.assert_allclose(live['next_obs'][k], b['next_obs'][k], atol=1e-6, err_msg=k)
    np.testing.assert_allclose(live['rewards'], b['rewards'], atol=1e-5)
    np.testing.assert_allclose(live['discount'], b['discount'], atol=1e-6)
    np.testing.assert_allclose(live['action'], b['action'], atol=1e-6)


def test_feed_polls_new_episodes_and_mixes_live_data(data_dir, tmp_path):
    import shutil
    d = tmp_path / 'data'
    shutil.copytree(data_dir, d)
    feed = DataFeed(str(d), KEYS, n_step=2, discount=0.9, live_fraction=0.25)
    assert feed.poll() == 0 and feed.live is None
    record_synthetic_episodes(d, 3, 2, 15)
    assert feed.poll() == 2 and feed.episodes == 5 and feed.live_episodes == 2
    batch = feed.sample(40, np.random.default_rng(1))
    ep_marker = batch['obs']['sawyer/joints/angle'][:, 0, 1]        # synthetic: joint 1 = episode
    assert (ep_marker >= 3).sum() >= 10                              # >= the live quarter
    assert batch['action'].shape == (40, 5)


def test_train_offline_on_recorded_episodes(data_dir, tmp_path):
    cfg = load_learner_config(default_config_dir() / 'crr_state_ci.yaml',
                              ['learner.batch_size=16', 'learner.log_every=2', 'learner.device=cpu'])
    from chef_recorder.dataset import Dataset
    ds = Dataset(data_dir)
    sampler = make_sampler((ds, ds.query()), cfg.learner)
    assert len(sampler) == 45
    path, summary = train_offline(cfg, sampler, 6, tmp_path / 'run', progress=False)
    assert Path(path).is_file() and summary['steps'] == 6
    assert np.isfinite(summary['final']['critic_loss'])


def test_an_action_chunking_learner_trains_from_the_feed_and_refuses_a_live_replay(data_dir, tmp_path):
    from chef_trainer.offline import LearningRun
    cfg = load_learner_config(default_config_dir() / 'bc_state.yaml',
                              ['learner.batch_size=16', 'learner.device=cpu', 'learner.train_on=all'])
    assert cfg.learner.network.action_horizon > 1                  # the state configs chunk
    with pytest.raises(ConfigError, match='action_horizon'):       # the online learner does not
        load_learner_config(default_config_dir() / 'mpo_sacx_state.yaml', ['learner.network.action_horizon=8'])
    net = cfg.learner.network
    feed = DataFeed(str(data_dir), tuple(net.input_keys), n_step=1, discount=0.99)
    run = LearningRun(cfg.learner, tmp_path / 'run', feed)
    batch = feed.sample(4, np.random.default_rng(0))
    assert batch['action_chunk'].shape == (4, net.action_horizon, 5)
    run.update()
    assert run.steps == 1
    live = DataFeed(str(data_dir), tuple(net.input_keys), n_step=1, discount=0.99, live_fraction=0.5)
    with pytest.raises(ValueError, match='live_fraction'):
        LearningRun(cfg.learner, tmp_path / 'run2', live)


def test_every_learner_config_loads_and_builds():
    cfg_dir = default_config_dir()
    files = sorted(cfg_dir.glob('*.yaml'))
    assert {f.stem for f in files} >= {'crr_state_ci', 'crr_pixels', 'bc_pixels', 'mpo_sacx_state',
                                       'mpo_sacx_pixels', 'mpo_reach_ci'}
    for f in files:
        cfg = load_learner_config(f, ['learner.device=cpu', 'learner.compile=false'])
        learner = make_learner(cfg.learner)
        assert learner.algorithm == cfg.learner.algorithm, f


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('learner:\n  algoritm: crr\n')
    with pytest.raises(ConfigError, match="did you mean 'algorithm'"):
        load_learner_config(bad)
    with pytest.raises(ConfigError, match='n_intentions'):
        load_learner_config(None, ['learner.intentions=[staged]'])
    with pytest.raises(ConfigError, match='not one of'):
        load_learner_config(None, ['learner.crr.weight_mode=soft'])


def test_learn_cli_sets_torch_threads_and_trains(data_dir, tmp_path):
    """`learn offline` runs with an explicit torch thread count (default 1), never torch's default."""
    import torch

    from chef_trainer import cli
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        rc = cli.main(['offline', '--config', 'crr_state_ci', '--data', str(data_dir), '--steps', '3',
                       '--run-dir', str(tmp_path / 'run'), '--quiet', '--set', 'learner.batch_size=8',
                       '--set', 'learner.device=cpu'])
        assert rc in (0, None) and torch.get_num_threads() == 1
        assert (tmp_path / 'run' / 'latest.json').is_file()
        with pytest.raises(SystemExit, match='--threads must be >= 1'):
            cli.main(['offline', '--data', str(data_dir), '--steps', '1', '--run-dir', str(tmp_path / 'x'),
                      '--threads', '0'])
    finally:
        torch.set_num_threads(before)
