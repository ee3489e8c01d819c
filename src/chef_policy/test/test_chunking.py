"""Action chunking at run time: TemporalEnsemble averages every chunk covering a tick, and a
NetworkPolicy whose actor predicts chunks acts on that average and forgets it at reset. ROS-free."""

import numpy as np
import pytest
import torch

from chef_policy.chunking import TemporalEnsemble
from chef_policy.networks import MultiTaskActor, NetworkConfig
from chef_policy.runner import NetworkPolicy

KEY = 'sawyer/joints/angle'


def chunk(value, horizon=3, k=1, p_close=0.5):
    """mean = value + step index (so each step is recognisable), std = 0.1 * (step + 1)."""
    steps = torch.arange(horizon, dtype=torch.float32)
    mean = (value + steps)[None, :, None].expand(k, horizon, 4).clone()
    std = (0.1 * (steps + 1))[None, :, None].expand(k, horizon, 4).clone()
    p = torch.tensor([1 - p_close, p_close]).log()
    return mean, std, p.expand(k, horizon, 2).clone()


def test_each_tick_averages_the_chunks_that_cover_it_and_drops_older_ones():
    ens = TemporalEnsemble(3)
    m, s, lg = ens.push(*chunk(10.0, p_close=0.9))          # tick 0: chunk 0 step 0
    assert m.flatten()[0].item() == pytest.approx(10.0) and s.flatten()[0].item() == pytest.approx(0.1)
    m, s, lg = ens.push(*chunk(20.0, p_close=0.1))          # tick 1: chunk 0 step 1 (11), chunk 1 step 0 (20)
    assert m.flatten()[0].item() == pytest.approx(15.5)
    assert s.flatten()[0].item() == pytest.approx(0.1)       # the newest prediction's spread
    assert lg.softmax(-1).flatten()[1].item() == pytest.approx(0.5)   # probabilities averaged
    m, _, _ = ens.push(*chunk(30.0))                         # tick 2: 12, 21, 30
    assert m.flatten()[0].item() == pytest.approx(21.0) and len(ens) == 3
    m, _, _ = ens.push(*chunk(40.0))                         # tick 3: chunk 0 is too old: 22, 31, 40
    assert m.flatten()[0].item() == pytest.approx(31.0) and len(ens) == 3
    ens.reset()
    m, _, _ = ens.push(*chunk(50.0))
    assert m.flatten()[0].item() == pytest.approx(50.0) and len(ens) == 1 and ens.tick == 1
    with pytest.raises(ValueError, match='chunk of 2 steps'):
        ens.push(*chunk(1.0, horizon=2))


def test_a_chunking_policy_acts_on_the_temporal_ensemble_and_forgets_it_at_reset():
    torch.manual_seed(0)
    cfg = NetworkConfig(obs_mode='state', state_keys=(KEY,), use_wrench=False, use_prev_action=False,
                        state_feature_dim=32, actor_torso=(32,), n_intentions=1, action_horizon=3)
    actor = MultiTaskActor(cfg)
    policy = NetworkPolicy(actor, cfg)
    rng = np.random.default_rng(0)
    obs = [{KEY: rng.normal(size=cfg.key_input_shape(KEY)).astype(np.float32)} for _ in range(3)]
    with torch.no_grad():
        means = [actor.forward_chunk({KEY: torch.from_numpy(o[KEY])[None]})[0][0, 0] for o in obs]  # [H, 4]
    policy.reset(0)
    a0 = policy.act(obs[0], {}, 0, deterministic=True)
    a1 = policy.act(obs[1], {}, 0, deterministic=True)
    np.testing.assert_allclose(a0[:4], means[0][0].clamp(-1, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(a1[:4], ((means[0][1] + means[1][0]) / 2).clamp(-1, 1).numpy(), atol=1e-6)
    policy.reset(1)                                          # a new episode starts from its own chunk
    np.testing.assert_allclose(policy.act(obs[2], {}, 0, deterministic=True)[:4],
                               means[2][0].clamp(-1, 1).numpy(), atol=1e-6)
    plain = NetworkPolicy(MultiTaskActor(NetworkConfig(obs_mode='state', state_keys=(KEY,), use_wrench=False,
                                                       use_prev_action=False)), cfg)
    assert plain.chunks is None                              # one-step actors act as before


def test_a_one_step_actor_loads_a_chunking_actors_weights_as_its_first_step():
    torch.manual_seed(1)
    base = dict(obs_mode='state', state_keys=(KEY,), use_wrench=False, use_prev_action=False,
                state_feature_dim=32, actor_torso=(32,), n_intentions=2)
    chunking = MultiTaskActor(NetworkConfig(**base, action_horizon=4))
    one = MultiTaskActor(NetworkConfig(**base))
    one.load_state_dict(chunking.state_dict())
    obs = {KEY: torch.randn((5,) + NetworkConfig(**base).key_input_shape(KEY))}
    with torch.no_grad():
        for a, b in zip(one(obs), chunking(obs)):
            torch.testing.assert_close(a, b)
    with pytest.raises(RuntimeError, match='size mismatch'):       # more steps than stored: refused
        MultiTaskActor(NetworkConfig(**base, action_horizon=8)).load_state_dict(chunking.state_dict())
