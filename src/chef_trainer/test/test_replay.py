"""The in-memory replay: n-step sums by hand, terminals, ring overwrite, partial episodes, mixing."""

import numpy as np
import pytest

from chef_trainer.replay import MixedSampler, ReplayBuffer, ReplayError

KEY = 'sawyer/joints/angle'
SPEC = {KEY: (3, 7)}


def frame(ep, tick):
    x = np.zeros((3, 7), np.float32)
    x[0, 0], x[0, 1] = ep, tick
    return {KEY: x}


def episode(buf, ep, length, rewards=None, terminal=False):
    frames = {KEY: np.stack([frame(ep, t)[KEY] for t in range(length + 1)])}
    actions = np.tile(np.linspace(-1, 1, 5, dtype=np.float32), (length, 1))
    if rewards is None:
        rewards = np.ones((length, 7), np.float32)
    return buf.add_episode(frames, actions, rewards, terminal=terminal)


def test_n_step_sums_and_discounts_by_hand():
    buf = ReplayBuffer(100, SPEC, n_step=3, discount=0.5)
    r = np.zeros((5, 7), np.float32)
    r[:, 0] = [1, 2, 4, 8, 16]                 # reach_grasp
    r[:, 5] = [0, 0, 0, 0, 1]                  # staged
    episode(buf, 0, 5, r)
    b = buf.gather(np.array([0, 3, 4]))
    # t=0: 1 + .5*2 + .25*4 = 3, gamma^3; t=3 (m=2): 8 + .5*16 = 16, gamma^2; t=4 (m=1): 16, gamma
    assert np.allclose(b['rewards'][:, 0], [3.0, 16.0, 16.0])
    assert np.allclose(b['rewards'][:, 5], [0.0, 0.5, 1.0])
    assert np.allclose(b['discount'], [0.125, 0.25, 0.5])
    assert np.allclose(b['next_obs'][KEY][:, 0, 1], [3, 5, 5])     # next obs tick = t + m
    assert np.allclose(b['obs'][KEY][:, 0, 1], [0, 3, 4])
    with pytest.raises(ReplayError):
        buf.gather(np.array([5]))             # the last frame has no successor


def test_terminal_episode_stops_bootstrapping():
    buf = ReplayBuffer(100, SPEC, n_step=2, discount=0.9)
    episode(buf, 0, 4, terminal=True)
    b = buf.gather(np.array([0, 2, 3]))
    assert np.allclose(b['discount'], [0.81, 0.0, 0.0])           # windows reaching the end: 0
    assert np.allclose(b['rewards'][:, 0], [1.9, 1.9, 1.0])


def test_ring_overwrite_keeps_every_sampled_transition_consistent():
    buf = ReplayBuffer(50, SPEC, n_step=3, discount=0.9)
    for ep in range(12):                      # 12 x 8 frames >> 50: wraps many times
        episode(buf, ep, 7)
    rng = np.random.default_rng(0)
    b = buf.sample(512, rng)
    ep, tick = b['obs'][KEY][:, 0, 0], b['obs'][KEY][:, 0, 1]
    nep, ntick = b['next_obs'][KEY][:, 0, 0], b['next_obs'][KEY][:, 0, 1]
    assert np.all(ep == nep)                  # never crosses an episode boundary
    m = ntick - tick
    assert np.all((m >= 1) & (m <= 3))
    assert np.allclose(b['discount'], 0.9 ** m)
    assert ep.min() >= 12 - 50 // 8 - 1       # only recent episodes survive
    assert 0 < len(buf) <= 50


def test_incremental_episode_is_sampled_with_truncated_windows():
    buf = ReplayBuffer(100, SPEC, n_step=5, discount=0.5)
    buf.start_episode(frame(0, 0))
    with pytest.raises(ReplayError, match='no transition'):
        buf.sample(1, np.random.default_rng(0))
    for t in range(2):
        buf.append(np.zeros(5), np.ones(7), frame(0, t + 1))
    b = buf.gather(np.array([0]))
    assert b['discount'][0] == pytest.approx(0.25)                # only 2 steps exist yet
    assert b['rewards'][0, 0] == pytest.approx(1.5)


def test_bad_input_is_refused():
    buf = ReplayBuffer(100, SPEC, n_step=2, discount=0.9)
    with pytest.raises(ReplayError, match='before start_episode'):
        buf.append(np.zeros(5), np.zeros(7), frame(0, 1))
    buf.start_episode(frame(0, 0))
    with pytest.raises(ReplayError, match='not finite'):
        buf.append(np.zeros(5), np.full(7, np.nan), frame(0, 1))
    with pytest.raises(ReplayError, match='shape'):
        buf.append(np.zeros(5), np.zeros(7), {KEY: np.zeros((2, 7))})
    with pytest.raises(ReplayError, match='lacks'):
        buf.append(np.zeros(5), np.zeros(7), {})
    bad = frame(0, 1)
    bad[KEY][1, 1] = np.inf
    with pytest.raises(ReplayError, match='not finite'):
        buf.append(np.zeros(5), np.zeros(7), bad)


def test_mixed_sampler_fractions_and_fallback():
    a = ReplayBuffer(200, SPEC, n_step=1, discount=0.9)
    b = ReplayBuffer(200, SPEC, n_step=1, discount=0.9)
    episode(a, 1, 20)
    mix = MixedSampler([a, b], [0.25, 0.75])
    out = mix.sample(40, np.random.default_rng(0))
    assert np.all(out['obs'][KEY][:, 0, 0] == 1)                  # b is empty: a serves it all
    episode(b, 2, 20)
    out = mix.sample(40, np.random.default_rng(0))
    src = out['obs'][KEY][:, 0, 0]
    assert (src == 1).sum() == 10 and (src == 2).sum() == 30
    assert out['action'].shape == (40, 5) and out['rewards'].shape == (40, 7)
