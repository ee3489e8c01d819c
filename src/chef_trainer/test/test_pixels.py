"""Pixel learners: the pixel configs mirror the state loop's IQL and read no privileged key, the DrQ
shift reaches the encoders as uint8 without touching the caller's batch, and a BC pixel student
initialises IQL fine-tuning (its actor kept, the critics and value standardised afresh)."""

import numpy as np
import pytest
import torch

from chef_contract.spec import CAMERA_NAMES, REAL_STATE_OBSERVATION_NAMES, image_key
from chef_policy.networks import MultiTaskActor, NetworkConfig
from chef_trainer.config import IQLConfig, LearnerConfig, default_config_dir, load_learner_config
from chef_trainer.offline import LearningRun
from chef_trainer.replay import ReplayBuffer

KEY = 'sawyer/joints/angle'
CAM = image_key('basket_front_left')


@pytest.mark.parametrize('name', ['iql_pixels_cpu', 'iql_pixels'])
def test_pixel_configs_mirror_the_state_loops_iql_and_read_only_real_cell_inputs(name):
    cfg_dir = default_config_dir()
    state = load_learner_config(cfg_dir / 'iql_state.yaml').learner
    for algorithm in ('iql', 'bc'):                  # the two trials of config/chef/pixels*.yaml
        px = load_learner_config(cfg_dir / f'{name}.yaml', [f'learner.algorithm={algorithm}']).learner
        net = px.network
        assert net.obs_mode == 'pixels' and not net.privileged
        assert set(net.input_keys) == set(REAL_STATE_OBSERVATION_NAMES)   # proprio, wrench, prev action
        assert 'wrist/force' in net.input_keys and 'action/environment' in net.input_keys
        assert set(net.cameras) == set(CAMERA_NAMES)                      # 2 front + back camera
        actor = MultiTaskActor(net)
        assert set(actor.encoder.state_keys) <= set(REAL_STATE_OBSERVATION_NAMES)
        assert set(actor.encoder.image_keys) == {image_key(c) for c in CAMERA_NAMES}
        assert px.image_shift_px > 0
    iql = load_learner_config(cfg_dir / f'{name}.yaml').learner
    for field in ('algorithm', 'n_step', 'discount', 'target_tau', 'actor_loss', 'iql'):
        assert getattr(iql, field) == getattr(state, field), field
    assert (iql.optim.actor_lr, iql.optim.critic_lr) == (state.optim.actor_lr, state.optim.critic_lr)


def tiny_pixel_net(**kw):
    base = dict(obs_mode='pixels', state_keys=(KEY,), use_wrench=False, use_prev_action=False,
                cameras=('basket_front_left',), image_size=16, encoder_channels=(4,),
                encoder_kernels=(4,), encoder_strides=(2,), image_feature_dim=8, state_feature_dim=16,
                actor_torso=(16,), critic_torso=(16,))
    base.update(kw)
    return NetworkConfig(**base)


def pixel_replay(episodes=3, steps=20, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(500, {KEY: (3, 7), CAM: (16, 16, 3)}, n_step=1, discount=0.9,
                       obs_dtypes={CAM: np.uint8})
    for _ in range(episodes):
        frames = {KEY: rng.normal(size=(steps + 1, 3, 7)).astype(np.float32),
                  CAM: rng.integers(0, 256, (steps + 1, 16, 16, 3), dtype=np.uint8)}
        buf.add_episode(frames, rng.uniform(-1, 1, (steps, 5)).astype(np.float32),
                        rng.uniform(0, 1, (steps, 7)).astype(np.float32))
    return buf


@pytest.mark.parametrize('algorithm', ['iql', 'bc'])
def test_random_shift_reaches_the_encoders_as_uint8_and_leaves_the_batch_alone(tmp_path, algorithm):
    buf = pixel_replay()
    for pad in (0, 2):
        cfg = LearnerConfig(algorithm=algorithm, network=tiny_pixel_net(), batch_size=16, seed=2,
                            image_shift_px=pad, log_every=1, device='cpu')
        run = LearningRun(cfg, tmp_path / f'{algorithm}{pad}', buf)
        seen = []
        run.learner.actor.encoder.images.register_forward_pre_hook(lambda m, a: seen.append(a[0][0]))
        batch = buf.sample(16, np.random.default_rng(5))
        before = batch['obs'][CAM].copy()
        out = run.update(batch)
        assert np.isfinite(float(out['loss'].detach()))
        assert np.array_equal(batch['obs'][CAM], before)              # the caller's batch untouched
        img = seen[0]
        assert img.dtype == torch.uint8 and img.shape == (16, 16, 16, 3)
        assert torch.equal(img, torch.from_numpy(before)) == (pad == 0)
        run.close()


def test_a_bc_student_initialises_iql_fine_tuning(tmp_path):
    """The distillation path's second step: IQL starts from the BC student's actor (and its input
    statistics); the critics and value, which the BC checkpoint lacks, start fresh and get their
    own standardisation from the fine-tuning data instead of staying unnormalised."""
    buf = pixel_replay(seed=1)
    net = tiny_pixel_net()
    bc = LearningRun(LearnerConfig(algorithm='bc', network=net, batch_size=16, seed=1, device='cpu'),
                     tmp_path / 'bc', buf)
    for _ in range(3):
        bc.update()
    info = bc.checkpoint()
    bc_actor = {k: v.clone() for k, v in bc.learner.actor.state_dict().items()}
    bc.close()
    iql = LearningRun(LearnerConfig(algorithm='iql', network=net, batch_size=16, seed=1, device='cpu',
                                    iql=IQLConfig(critics=2)), tmp_path / 'iql', buf,
                      init_checkpoint=info['path'])
    learner = iql.learner
    assert iql.started_from.startswith('init:')
    assert all(torch.equal(v, bc_actor[k]) for k, v in learner.actor.state_dict().items())
    assert not learner.state_statistics_ready                      # critics and value: fresh
    assert not bool(learner.value.encoder.state_stats_ready)
    iql.update()
    assert learner.state_statistics_ready
    for name in ('critic', 'critic2', 'value', 'target_critic'):
        enc = getattr(learner, name).encoder
        assert bool(enc.state_stats_ready) and not torch.equal(enc.state_std, torch.ones_like(enc.state_std))
    assert torch.equal(learner.actor.encoder.state_mean, bc_actor['encoder.state_mean'])   # kept
    iql.close()
