"""Fitted Q evaluation ranks policies of known value: on a two-tick chain where one arm action earns
reward 1 per tick and the other 0, the FQE value of the always-good policy approaches its true
return (1 + gamma) and the always-bad policy scores ~0, from data logged by a 50/50 behaviour.
The held-out action error ranks by the successful held-out episodes' commands only."""

import math

import numpy as np
import torch

from chef_policy.networks import MultiTaskActor, NetworkConfig
from chef_trainer.ope import FQEConfig, fitted_q_evaluation, heldout_action_error
from chef_trainer.replay import ReplayBuffer

KEY = 'sawyer/joints/angle'
GAMMA = 0.9


def net():
    return NetworkConfig(obs_mode='state', state_keys=(KEY,), use_wrench=False, use_prev_action=False,
                         state_feature_dim=32, actor_torso=(32,), n_intentions=1)


def state(t):
    x = np.zeros((3, 7), np.float32)
    x[0, t] = 1.0
    return x


def fixed_actor(vx: float) -> MultiTaskActor:
    """A policy that always commands arm vx (gripper closed), whatever the state."""
    actor = MultiTaskActor(net())
    with torch.no_grad():
        actor.head.out.weight.zero_()
        actor.head.out.bias.zero_()
        actor.head.out.bias[:, 0] = math.atanh(vx)
        actor.head.out.bias[:, 9] = 5.0                       # gripper logit of 'close'
    return actor.eval()


def chain_data(episodes=400, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(4 * episodes, {KEY: (3, 7)}, n_step=1, discount=GAMMA)
    for _ in range(episodes):
        good = rng.uniform(size=2) < 0.5
        acts = np.zeros((2, 5), np.float32)
        acts[:, 0] = np.where(good, 0.6, -0.6)
        acts[:, 4] = 1.0
        rewards = np.zeros((2, 7), np.float32)
        rewards[:, 5] = good.astype(np.float32)               # 'staged' (REWARD_TERMS index 5)
        buf.add_episode({KEY: np.stack([state(0), state(1), state(2)])}, acts, rewards, terminal=True)
    return buf


def test_fqe_ranks_two_policies_of_known_value():
    buf = chain_data()
    eval_states = [{KEY: np.stack([state(0), state(1)])}]
    cfg = FQEConfig(updates=1500, batch_size=128, critic_torso=(64, 64), lr=1e-3, target_tau=0.05)
    torch.manual_seed(0)
    good = fitted_q_evaluation(fixed_actor(0.6), net(), buf, cfg, eval_states=eval_states)
    bad = fitted_q_evaluation(fixed_actor(-0.6), net(), buf, cfg, eval_states=eval_states)
    assert abs(good['fqe_initial_value'] - (1 + GAMMA)) < 0.25, good
    assert abs(bad['fqe_initial_value']) < 0.25, bad
    assert good['fqe_value'] > bad['fqe_value'] + 1.0


class _Episode:
    def __init__(self, vx, success, valid=(True, True)):
        self.actions = np.array([[vx, 0, 0, 0, 1.0]] * 2, np.float32)
        self.valid = np.array(valid, bool)
        self.metadata = {'success': success}


class _HeldOut:
    """The two things heldout_action_error reads of a TransitionSampler: episodes and their states."""

    def __init__(self, episodes):
        self.episodes = episodes

    def episode_states(self, i):
        return {KEY: np.stack([state(0), state(1), state(2)])}


def test_heldout_action_error_ranks_by_the_successful_episodes_commands():
    # the successful held-out episodes commanded +0.6, the failed ones -0.6 (and outnumber them)
    held = _HeldOut([_Episode(0.6, True), _Episode(-0.6, False), _Episode(-0.6, False),
                     _Episode(0.6, True, valid=(True, False))])
    good = heldout_action_error(fixed_actor(0.6), net(), held)
    bad = heldout_action_error(fixed_actor(-0.6), net(), held)
    assert good['heldout_episodes'] == 2 and good['heldout_ticks'] == 3      # the lost tick is skipped
    assert good['heldout_arm_mse'] < 1e-3 and good['heldout_gripper_flip'] == 0.0
    assert abs(bad['heldout_arm_mse'] - 1.2 ** 2 / 4) < 1e-3
    assert good['heldout_score'] > bad['heldout_score']
    # no successful episode held out: every episode counts (here the failed ones dominate)
    failed = _HeldOut([_Episode(-0.6, False), _Episode(-0.6, False), _Episode(0.6, False)])
    assert heldout_action_error(fixed_actor(-0.6), net(), failed)['heldout_score'] > \
        heldout_action_error(fixed_actor(0.6), net(), failed)['heldout_score']


# --- action chunks: scored as the runner issues them (temporal ensemble along the trajectory) ------
def chunk_net(horizon=4, k=2):
    return NetworkConfig(obs_mode='state', state_keys=(KEY,), use_wrench=False, use_prev_action=False,
                         state_feature_dim=16, actor_torso=(16,), n_intentions=k, action_horizon=horizon)


def test_trajectory_actions_are_the_temporal_ensemble_the_runner_issues():
    from chef_policy.chunking import TemporalEnsemble
    from chef_policy.networks import sample_action
    from chef_trainer.ope import policy_actions, trajectory_actions
    torch.manual_seed(0)
    actor = MultiTaskActor(chunk_net()).eval()
    obs = {KEY: torch.randn(12, 3, 7)}
    got = trajectory_actions(actor, obs, 1)
    ens = TemporalEnsemble(4)
    mean, std, logits = actor.forward_chunk(obs)
    for t in range(12):
        m, s, lg = ens.push(mean[t], std[t], logits[t])
        want = sample_action(m[None], s[None], lg[None], 1, deterministic=True)[0]
        assert torch.allclose(got[t], want, atol=1e-6), t
    assert not torch.allclose(got, policy_actions(actor, obs, 1))          # not just step 0
    one = MultiTaskActor(chunk_net(horizon=1)).eval()
    assert torch.equal(trajectory_actions(one, obs, 0), policy_actions(one, obs, 0))


class _ChainSampler:
    """chain_data as a TransitionSampler: episodes, episode_states and batches that say which
    episode and tick each transition comes from (what FQE needs to look up chunked commands)."""

    def __init__(self, episodes=400, seed=0):
        rng = np.random.default_rng(seed)
        self.good = rng.uniform(size=(episodes, 2)) < 0.5
        self.episodes = [None] * episodes
        self.states = np.stack([state(0), state(1), state(2)])

    def episode_states(self, i):
        return {KEY: self.states}

    def sample(self, batch, rng):
        e = rng.integers(0, len(self.episodes), batch)
        t = rng.integers(0, 2, batch)
        good = self.good[e, t]
        action = np.zeros((batch, 5), np.float32)
        action[:, 0] = np.where(good, 0.6, -0.6)
        action[:, 4] = 1.0
        rewards = np.zeros((batch, 7), np.float32)
        rewards[:, 5] = good
        return {'obs': {KEY: self.states[t]}, 'next_obs': {KEY: self.states[t + 1]}, 'action': action,
                'rewards': rewards, 'discount': np.where(t == 1, 0.0, GAMMA).astype(np.float32),
                'n': np.ones(batch, np.int32), 'episode': e, 't': t}


def fixed_chunk_actor(vx: float) -> MultiTaskActor:
    actor = MultiTaskActor(chunk_net(k=1))
    with torch.no_grad():
        actor.head.out.weight.zero_()
        actor.head.out.bias.zero_()
        for h in range(4):                                    # every step of the chunk: vx, closed
            actor.head.out.bias[:, 10 * h] = math.atanh(vx)
            actor.head.out.bias[:, 10 * h + 9] = 5.0
    return actor.eval()


def test_fqe_of_a_chunking_policy_ranks_two_policies_of_known_value():
    cfg = FQEConfig(updates=1500, batch_size=128, critic_torso=(64, 64), lr=1e-3, target_tau=0.05)
    eval_states = [{KEY: np.stack([state(0), state(1)])}]
    torch.manual_seed(0)
    good = fitted_q_evaluation(fixed_chunk_actor(0.6), chunk_net(k=1), _ChainSampler(), cfg, eval_states=eval_states)
    bad = fitted_q_evaluation(fixed_chunk_actor(-0.6), chunk_net(k=1), _ChainSampler(), cfg, eval_states=eval_states)
    assert abs(good['fqe_initial_value'] - (1 + GAMMA)) < 0.25, good
    assert abs(bad['fqe_initial_value']) < 0.25, bad
