"""Networks: shapes of the contract, strict config, action sampling and log-probs, shared critic."""

import math

import numpy as np
import pytest
import torch

from chef_contract.config import ConfigError
from chef_contract.obs import FrameStacker
from chef_contract.spec import (
    INTENTIONS, POLICY_CAMERAS, REAL_STATE_OBSERVATION_NAMES, STATE_OBSERVATION_NAMES,
)
from chef_policy.networks import (
    MultiTaskActor, MultiTaskCritic, NetworkConfig, ObservationEncoder, action_log_prob,
    batch_observations, entropy, obs_to_tensors, sample_action, select_intention,
)
from conftest import make_frame

SMALL = dict(image_size=64, encoder_channels=(8, 16), encoder_kernels=(8, 4), encoder_strides=(4, 2),
             image_feature_dim=16, state_feature_dim=32, actor_torso=(32,), critic_torso=(32, 32))


def stacked_obs(rng, n=1, image_size=128):
    stacker = FrameStacker()
    return [stacker.push(make_frame(rng, image_size)) for _ in range(n)]


def test_default_configs_follow_the_contract():
    px = NetworkConfig()
    assert px.obs_mode == 'pixels' and px.cameras == POLICY_CAMERAS
    assert px.state_keys == REAL_STATE_OBSERVATION_NAMES and not px.privileged
    assert px.n_intentions == len(INTENTIONS) == 6
    st = NetworkConfig(obs_mode='state')
    assert st.state_keys == STATE_OBSERVATION_NAMES and st.state_dim == 292 and st.privileged
    assert st.image_keys == ()
    no_ft = NetworkConfig(use_wrench=False, use_prev_action=False)
    assert 'wrist/force' not in no_ft.input_keys and 'action/environment' not in no_ft.input_keys
    assert 'wrist/force' in no_ft.state_keys          # the config keeps what was asked for


def test_config_is_strict_and_round_trips():
    cfg = NetworkConfig(**SMALL)
    again = NetworkConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ConfigError, match='did you mean'):
        NetworkConfig.from_dict({'imagesize': 64})
    with pytest.raises(ConfigError, match='unknown'):
        NetworkConfig(cameras=('basket_top',))
    with pytest.raises(ConfigError, match='not state observations'):
        NetworkConfig(state_keys=('sawyer/joints/angel',))
    with pytest.raises(ConfigError, match='too small'):
        NetworkConfig(image_size=16, encoder_kernels=(8, 8, 8))
    with pytest.raises(ConfigError, match='one of'):
        NetworkConfig.from_dict({'obs_mode': 'depth'})


@pytest.mark.parametrize('mode', ['pixels', 'state'])
def test_actor_and_critic_shapes(rng, mode):
    cfg = NetworkConfig(obs_mode=mode, **SMALL)
    obs = obs_to_tensors(batch_observations(stacked_obs(rng, 3, 64), cfg), cfg)
    actor, critic = MultiTaskActor(cfg), MultiTaskCritic(cfg)
    mean, std, logits = actor(obs)
    assert mean.shape == std.shape == (3, 6, 4) and logits.shape == (3, 6, 2)
    assert mean.abs().max() < 1 and std.min() > 0
    q = critic(obs, torch.zeros(3, 5))
    assert q.shape == (3, 6)
    if mode == 'pixels':
        assert set(obs) == set(cfg.input_keys) | {'basket_front_left/pixels', 'basket_front_right/pixels'}
    else:
        assert set(obs) == set(STATE_OBSERVATION_NAMES)


def test_obs_to_tensors_single_batched_and_bad_input(rng):
    cfg = NetworkConfig(**SMALL)
    one = stacked_obs(rng, 1, 128)[0]
    t = obs_to_tensors(one, cfg)
    assert t['sawyer/joints/angle'].shape == (1, 3, 7)
    assert t['action/environment'].shape == (1, 2, 8)
    assert t['basket_front_left/pixels'].dtype == torch.uint8
    assert torch.equal(t['sawyer/joints/angle'][0], torch.from_numpy(one['sawyer/joints/angle']))
    # 128 px inputs into a 64 px network are resized inside the encoder
    assert MultiTaskActor(cfg)(t)[0].shape == (1, 6, 4)
    bad = dict(one)
    bad['wrist/force'] = bad['wrist/force'].copy()
    bad['wrist/force'][0, 0] = np.nan
    with pytest.raises(ValueError, match='not finite'):
        obs_to_tensors(bad, cfg)
    bad = dict(one)
    bad['sawyer/joints/angle'] = np.zeros((2, 7), np.float32)
    with pytest.raises(ValueError, match='shape'):
        obs_to_tensors(bad, cfg)
    bad = {k: v for k, v in one.items() if k != 'basket_front_right/pixels'}
    with pytest.raises(ValueError, match='lacks image'):
        obs_to_tensors(bad, cfg)


def test_heads_are_per_intention_and_encoder_sees_every_input(rng):
    torch.manual_seed(0)
    cfg = NetworkConfig(**SMALL)
    obs = obs_to_tensors(stacked_obs(rng, 1, 64)[0], cfg)
    actor = MultiTaskActor(cfg)
    mean, _, _ = actor(obs)
    assert not torch.allclose(mean[:, 0], mean[:, 1])
    enc = ObservationEncoder(cfg)
    base = enc(obs)
    for key in list(cfg.input_keys) + list(cfg.image_keys):
        changed = dict(obs)
        changed[key] = (obs[key] + 1) if key in cfg.input_keys else (255 - obs[key])
        assert not torch.allclose(enc(changed), base), key


def test_sampling_and_log_probs_match_torch_distributions():
    torch.manual_seed(0)
    b, k = 4000, 6
    mean = torch.tanh(torch.randn(1, k, 4)).expand(b, k, 4)
    std = (torch.rand(1, k, 4) * 0.3 + 0.05).expand(b, k, 4)
    logits = torch.randn(1, k, 2).expand(b, k, 2)
    g = torch.Generator().manual_seed(7)
    a = sample_action(mean, std, logits, intention=2, generator=g, clip=False)
    assert a.shape == (b, 5)
    assert torch.allclose(a[:, :4].mean(0), mean[0, 2], atol=0.02)
    assert torch.allclose(a[:, :4].std(0), std[0, 2], rtol=0.1)
    p_close = torch.softmax(logits[0, 2], -1)[1]
    assert abs((a[:, 4] > 0).float().mean() - p_close) < 0.03
    assert set(a[:, 4].tolist()) <= {-1.0, 1.0}
    g2 = torch.Generator().manual_seed(7)
    assert torch.equal(a, sample_action(mean, std, logits, intention=2, generator=g2, clip=False))
    det = sample_action(mean, std, logits, intention=torch.full((b,), 3), deterministic=True)
    assert torch.allclose(det[:, :4], mean[:, 3])
    assert torch.equal(det[:, 4], torch.where(logits[:, 3].argmax(-1) == 1, 1.0, -1.0))
    # log-prob against torch.distributions
    lp = action_log_prob(mean[:8], std[:8], logits[:8], a[:8])
    assert lp.shape == (8, k)
    ref = (torch.distributions.Normal(mean[:8], std[:8]).log_prob(a[:8, None, :4]).sum(-1)
           + torch.distributions.Categorical(logits=logits[:8]).log_prob((a[:8, None, 4] > 0).long()))
    assert torch.allclose(lp, ref, atol=1e-5)
    ent = entropy(std[:1], logits[:1])
    ref_ent = (torch.distributions.Normal(mean[:1], std[:1]).entropy().sum(-1)
               + torch.distributions.Categorical(logits=logits[:1]).entropy())
    assert torch.allclose(ent, ref_ent, atol=1e-5)


def test_select_intention_per_sample():
    x = torch.arange(2 * 3 * 4).view(2, 3, 4)
    assert torch.equal(select_intention(x, 1), x[:, 1])
    assert torch.equal(select_intention(x, torch.tensor([2, 0])), torch.stack([x[0, 2], x[1, 0]]))


def test_behaviour_cloning_raises_log_prob_of_one_intention(rng):
    torch.manual_seed(0)
    cfg = NetworkConfig(obs_mode='state', state_feature_dim=32, actor_torso=(32,))
    obs = obs_to_tensors(batch_observations(stacked_obs(rng, 16), cfg), cfg)
    target = torch.tensor([[0.5, -0.5, 0.2, 0.0, 1.0]]).expand(16, 5)
    actor = MultiTaskActor(cfg)
    opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
    before = actor.log_prob(obs, target).detach()
    for _ in range(60):
        loss = -actor.log_prob(obs, target)[:, 4].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = actor.log_prob(obs, target).detach()
    assert after[:, 4].mean() > before[:, 4].mean() + 2.0
    det = actor.act(obs, 4, deterministic=True)
    assert torch.allclose(det[:, :4], target[:, :4], atol=0.1) and (det[:, 4] == 1).all()


def test_critic_torso_is_shared_and_distributional_option(rng):
    torch.manual_seed(0)
    cfg = NetworkConfig(obs_mode='state', state_feature_dim=32, critic_torso=(32, 32))
    obs = obs_to_tensors(batch_observations(stacked_obs(rng, 4), cfg), cfg)
    critic = MultiTaskCritic(cfg)
    action = torch.rand(4, 5) * 2 - 1
    for k in range(cfg.n_intentions):          # every task's loss reaches the shared torso
        critic.zero_grad()
        critic(obs, action)[:, k].sum().backward()
        assert critic.torso[0].weight.grad.abs().sum() > 0
        grads = critic.head.out.weight.grad.abs().sum(dim=(1, 2))
        assert grads[k] > 0 and (grads[torch.arange(cfg.n_intentions) != k] == 0).all()
    # actions outside [-1, 1] are clipped at the critic input
    assert torch.allclose(critic(obs, action.sign() * (1.5 + torch.rand(4, 5))), critic(obs, action.sign()))
    dist = MultiTaskCritic(NetworkConfig(obs_mode='state', critic_atoms=51, critic_v_min=-1.0,
                                         critic_v_max=5.0, state_feature_dim=32, critic_torso=(32,)))
    q = dist(obs, action)
    assert q.shape == (4, 6) and (q >= -1).all() and (q <= 5).all()
    assert dist.logits(obs, action).shape == (4, 6, 51)
    with pytest.raises(RuntimeError):
        critic.logits(obs, action)


def test_shared_encoder_between_actor_and_critic():
    cfg = NetworkConfig(obs_mode='state', state_feature_dim=32)
    enc = ObservationEncoder(cfg)
    actor, critic = MultiTaskActor(cfg, encoder=enc), MultiTaskCritic(cfg, encoder=enc)
    assert actor.encoder is critic.encoder
    assert math.isclose(cfg.state_dim, 292)


def test_matrix_rotations_are_continuous_where_quaternions_flip_sign():
    """A downward gripper's quaternion sits at w ~ 0 and the observation's w >= 0 convention flips it
    to -q: rotations='matrix' feeds the same input for q and -q, 'quaternion' does not."""
    import math
    from chef_policy.networks import MultiTaskActor, rotation_matrix
    keys = ('sawyer/pinch/pose', 'rgb30_red/to_pinch')
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(2, 3, 7, generator=g)
    obs = {'sawyer/pinch/pose': pose, 'rgb30_red/to_pinch': torch.randn(2, 3, 7, generator=g)}
    flipped = {k: v.clone() for k, v in obs.items()}
    flipped['sawyer/pinch/pose'][..., 3:] *= -1
    flipped['rgb30_red/to_pinch'][..., 3:] += 1.0           # a difference of flipped quaternions
    matrix = NetworkConfig(obs_mode='state', state_keys=keys, rotations='matrix')
    assert matrix.state_dim == 3 * 12 + 3 * 3
    torch.manual_seed(0)
    actor = MultiTaskActor(matrix)
    assert torch.allclose(actor(obs)[0], actor(flipped)[0], atol=1e-6)
    moved = {k: v.clone() for k, v in obs.items()}
    moved['rgb30_red/to_pinch'][..., :3] += 0.1
    assert not torch.allclose(actor(obs)[0], actor(moved)[0])
    quat = MultiTaskActor(NetworkConfig(obs_mode='state', state_keys=keys))
    assert not torch.allclose(quat(obs)[0], quat(flipped)[0])
    # a quarter turn about z, and the all-zero padding quaternion
    c = math.cos(math.pi / 4)
    m = rotation_matrix(torch.tensor([[c, 0.0, 0.0, c], [0.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(m[0], torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), atol=1e-6)
    assert torch.equal(m[1], torch.zeros(3, 3))
    with pytest.raises(ConfigError):
        NetworkConfig(obs_mode='state', rotations='matrix', pose_positions_only=True)


def _qmul(a, b):
    w1, x1, y1, z1 = a.unbind(-1)
    w2, x2, y2, z2 = b.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


def test_relative_rotations_give_the_grasp_yaw_free_of_half_turns_and_signs():
    """rotations='relative': each to_pinch key carries the object's axes seen from the gripper. A
    half turn of the parallel gripper about its approach axis and either quaternion's sign change
    nothing; a quarter turn (the fingers across the other pair of faces) does."""
    from chef_policy.networks import MultiTaskActor, gripper_axis_features
    g = torch.Generator().manual_seed(1)
    obj = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=-1)
    pinch = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=-1)
    f = gripper_axis_features(obj, pinch)
    assert f.shape == (6, 9)
    half = torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(6, 4)
    c = math.cos(math.pi / 4)
    quarter = torch.tensor([c, 0.0, 0.0, c]).expand(6, 4)
    assert torch.allclose(f, gripper_axis_features(-obj, pinch), atol=1e-5)
    assert torch.allclose(f, gripper_axis_features(obj, -pinch), atol=1e-5)
    assert torch.allclose(f, gripper_axis_features(obj, _qmul(pinch, half)), atol=1e-5)
    turned = gripper_axis_features(obj, _qmul(pinch, quarter))
    assert torch.allclose(turned[:, :6], -f[:, :6], atol=1e-5)          # the doubled angle moves by pi
    assert torch.allclose(turned[:, 6:], f[:, 6:], atol=1e-5)           # the axes stay as horizontal
    # aligned frames: the object's y axis lies along the closing axis (pinch y), x across it, z along
    # the approach: doubled-angle cosines (-1, 1, 0), sines 0, lengths in the closing plane (1, 1, 0)
    ident = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(gripper_axis_features(ident, ident)[0],
                          torch.tensor([-1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]), atol=1e-6)

    keys = ('rgb30_red/abs_pose', 'rgb30_red/to_pinch', 'sawyer/pinch/pose')
    cfg = NetworkConfig(obs_mode='state', state_keys=keys, rotations='relative')
    assert cfg.state_dim == 3 * 12 * 3
    obs = {k: torch.randn(2, 3, 7, generator=g) for k in keys}
    flipped = {k: v.clone() for k, v in obs.items()}
    flipped['sawyer/pinch/pose'][..., 3:] *= -1
    flipped['rgb30_red/abs_pose'][..., 3:] *= -1
    flipped['rgb30_red/to_pinch'][..., 3:] += 1.0           # the benchmark's difference of quaternions
    torch.manual_seed(0)
    actor = MultiTaskActor(cfg)
    assert torch.allclose(actor(obs)[0], actor(flipped)[0], atol=1e-5)
    with pytest.raises(ConfigError, match='relative'):      # to_pinch without what it is computed from
        NetworkConfig(obs_mode='state', state_keys=('rgb30_red/to_pinch', 'sawyer/pinch/pose'),
                      rotations='relative')


def test_a_batch_state_vector_is_computed_once_and_only_for_the_inputs_it_was_made_for():
    """ObservationEncoder.with_state_vector stores the converted inputs under a key naming the input
    set; an encoder of that set reads them back (the learner's networks convert the poses once per
    batch), an encoder of another set (other rotations, other keys) computes its own."""
    from chef_policy.networks import ObservationEncoder
    keys = ('rgb30_red/abs_pose', 'rgb30_red/to_pinch', 'sawyer/pinch/pose', 'gripper/grasp')
    g = torch.Generator().manual_seed(2)
    obs = {k: torch.randn((4,) + _stacked_shape(k), generator=g) for k in keys}
    rel = ObservationEncoder(NetworkConfig(obs_mode='state', state_keys=keys, rotations='relative'))
    quat = ObservationEncoder(NetworkConfig(obs_mode='state', state_keys=keys))
    fewer = ObservationEncoder(NetworkConfig(obs_mode='state', state_keys=keys[:3], rotations='relative'))
    cached = rel.with_state_vector(obs)
    assert torch.equal(rel.state_vector(cached), rel.state_vector(obs))
    assert len({rel.state_vector_key, quat.state_vector_key, fewer.state_vector_key}) == 3
    assert torch.equal(quat.state_vector(cached), quat.state_vector(obs))
    assert torch.equal(fewer.state_vector(cached), fewer.state_vector(obs))
    # it is what the encoder reads: a different stored vector changes the features
    poisoned = dict(cached, **{rel.state_vector_key: torch.zeros_like(cached[rel.state_vector_key])})
    assert not torch.allclose(rel(poisoned), rel(cached))


def _stacked_shape(key):
    from chef_contract.spec import STATE_OBSERVATIONS
    return next(k.shape for k in STATE_OBSERVATIONS if k.name == key)
