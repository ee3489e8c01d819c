"""Off-policy evaluation by fitted Q evaluation (FQE), ROS-free: rank candidate policies offline.

FQE (Le et al. 2019; the selection method Paine et al. 2020 found to rank offline-RL candidates
best) fits a fresh critic to the *candidate's* value on recorded transitions:

    Q(s, a) <- R^(n)(s, a) + gamma^n * Q_target(s_{t+n}, pi(s_{t+n}))     pi: deterministic, as executed

and scores the candidate with the mean of Q(s, pi(s)) over the states of held-out episodes. Unlike
the candidate's own critic (trained together with the policy it judges, so it overrates that
policy's actions), the FQE critic sees the candidate only through its actions. The reward is one
logged term (default 'staged', the benchmark's dense staged reward); n-step targets over the
recorded continuation (the sampler's n) make the value propagate in a few thousand updates, at the
price of a bias towards the behaviour policy over those n ticks.

    score = fitted_q_evaluation(actor, net_cfg, sampler, FQEConfig(updates=2000))
    score['fqe_value']          # mean Q(s, pi(s)) over every held-out state
    score['fqe_initial_value']  # ... over the episodes' first states only
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from chef_contract.config import field_
from chef_contract.spec import INTENTIONS, REWARD_TERMS
from chef_policy.chunking import TemporalEnsemble
from chef_policy.networks import MultiTaskActor, MultiTaskCritic, NetworkConfig, sample_action


@dataclass
class FQEConfig:
    updates: int = field_(2000, min=1, help='critic updates')
    batch_size: int = field_(256, min=1, help='transitions per update')
    reward: str = field_('staged', choices=REWARD_TERMS, help='logged reward term evaluated')
    critic_torso: Tuple[int, ...] = field_((256, 256), help='FQE critic MLP widths')
    lr: float = field_(3e-4, min=0.0, help='Adam learning rate')
    target_tau: float = field_(0.01, min=0.0, max=1.0, help='Polyak rate of the target critic')
    seed: int = field_(0, min=0, help='torch and batch seed')


def policy_intention(config: NetworkConfig, intention: str = 'staged') -> int:
    """Index of `intention` in a network's heads (a single-head network has only index 0)."""
    if config.n_intentions == 1:
        return 0
    return INTENTIONS.index(intention)


@torch.no_grad()
def policy_actions(actor: MultiTaskActor, obs: Dict[str, torch.Tensor], k: int) -> torch.Tensor:
    mean, std, logits = actor(obs)
    return sample_action(mean, std, logits, k, deterministic=True)


@torch.no_grad()
def trajectory_actions(actor: MultiTaskActor, obs: Dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """Deterministic commands [T, 5] of head k along one episode's consecutive states [T, ...], as
    the policy runner issues them: with action chunks (H > 1) the chunks predicted at every tick go
    through chef_policy.chunking.TemporalEnsemble, the runner's own; with H = 1 it is policy_actions. The states are the
    logged trajectory's, so this is the command the policy would give had it come the same way."""
    if actor.horizon == 1:
        return policy_actions(actor, obs, k)
    mean, std, logits = actor.forward_chunk(obs)                 # [T, K, H, ...]
    ensemble = TemporalEnsemble(actor.horizon)
    ticks = [ensemble.push(mean[t], std[t], logits[t]) for t in range(mean.shape[0])]
    mean, std, logits = (torch.stack(x) for x in zip(*ticks))    # [T, K, ...]
    return sample_action(mean, std, logits, k, deterministic=True)


def _to_torch(obs: Dict[str, np.ndarray], keys) -> Dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(obs[k], np.float32)) for k in keys}


def episode_states(sampler) -> List[Dict[str, np.ndarray]]:
    """Every state of every episode of a chef_recorder TransitionSampler: [{key: [T+1, ...]}]."""
    return [sampler.episode_states(i) for i in range(len(sampler.episodes))]


def fitted_q_evaluation(actor: MultiTaskActor, net_config: NetworkConfig, sampler,
                        cfg: Optional[FQEConfig] = None, intention: str = 'staged',
                        eval_states: Optional[Sequence[Dict[str, np.ndarray]]] = None) -> Dict[str, Any]:
    """FQE score of `actor` (head `intention`, deterministic) on held-out data: `sampler` draws
    its transitions (`.sample(batch, rng)`, the actor's state keys), `eval_states` are the episodes
    whose states are scored (default: every episode of `sampler`, a TransitionSampler)."""
    cfg = cfg or FQEConfig()
    if eval_states is None:
        eval_states = episode_states(sampler)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    actor = actor.eval()
    k = policy_intention(net_config, intention)
    col = REWARD_TERMS.index(cfg.reward)
    keys = tuple(net_config.input_keys)
    critic = MultiTaskCritic(replace(net_config, n_intentions=1, critic_torso=tuple(cfg.critic_torso)))
    critic.encoder.fit_state_statistics(_to_torch(sampler.sample(8192, rng)['obs'], keys))
    target = copy.deepcopy(critic).requires_grad_(False)
    opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
    # With action chunks the command at a state depends on the states before it: it is computed once
    # per tick of every sampled episode along its logged trajectory (the actor is fixed).
    table, offsets = None, None
    if actor.horizon > 1:
        per_episode = [trajectory_actions(actor, _to_torch(st, keys), k) for st in episode_states(sampler)]
        table = torch.cat(per_episode)
        offsets = np.cumsum([0] + [len(a) for a in per_episode])[:-1]
    losses = []
    for step in range(cfg.updates):
        b = sampler.sample(cfg.batch_size, rng)
        obs, next_obs = _to_torch(b['obs'], keys), _to_torch(b['next_obs'], keys)
        action = torch.as_tensor(b['action'], dtype=torch.float32)
        with torch.no_grad():
            if table is None:
                next_action = policy_actions(actor, next_obs, k)
            else:
                next_action = table[torch.as_tensor(offsets[b['episode']] + b['t'] + b['n'])]
            next_q = target(next_obs, next_action)[:, 0]
            y = torch.as_tensor(b['rewards'][:, col]) + torch.as_tensor(b['discount']) * next_q
        loss = F.mse_loss(critic(obs, action)[:, 0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, tp in zip(critic.parameters(), target.parameters()):
                tp.lerp_(p, cfg.target_tau)
        if step >= cfg.updates - 100:
            losses.append(float(loss.detach()))
    values, initial = [], []
    with torch.no_grad():
        for states in eval_states:
            obs = _to_torch(states, keys)
            q = critic(obs, trajectory_actions(actor, obs, k))[:, 0]
            values.append(q)
            initial.append(float(q[0]))
    q_all = torch.cat(values) if values else torch.zeros(0)
    return {'fqe_value': float(q_all.mean()) if q_all.numel() else float('nan'),
            'fqe_initial_value': float(np.mean(initial)) if initial else float('nan'),
            'fqe_td_loss': float(np.mean(losses)) if losses else float('nan'),
            'fqe_episodes': len(eval_states), 'fqe_updates': cfg.updates,
            'fqe_s': time.perf_counter() - t0}


@torch.no_grad()
def heldout_action_error(actor: MultiTaskActor, net_config: NetworkConfig, sampler,
                         intention: str = 'staged', successful_only: bool = True) -> Dict[str, Any]:
    """How closely the candidate (head `intention`, deterministic, as executed: trajectory_actions)
    reproduces the logged commands of held-out episodes that succeeded: arm mean squared error over
    the valid ticks, and
    the fraction of ticks whose gripper command has the other sign. On data whose successful
    episodes are near-optimal (CHEF's first iterations: a scripted or teleoperated expert), a policy
    that tracks them more closely on unseen scenes compounds less error; unlike FQE it needs no
    fitting, so it separates candidates whose values FQE scores alike. `heldout_score` = -arm mse.
    Falls back to every held-out episode when none succeeded."""
    actor = actor.eval()
    k = policy_intention(net_config, intention)
    keys = tuple(net_config.input_keys)
    idx = list(range(len(sampler.episodes)))
    if successful_only:
        won = [i for i in idx if sampler.episodes[i].metadata.get('success')]
        idx = won or idx
    sq, flips, n = 0.0, 0.0, 0
    for i in idx:
        ep = sampler.episodes[i]
        states = sampler.episode_states(i)
        logged = np.asarray(ep.actions, np.float32)
        valid = np.asarray(ep.valid, bool)
        obs = {key: torch.as_tensor(np.asarray(states[key][:len(logged)], np.float32)) for key in keys}
        act = trajectory_actions(actor, obs, k).numpy()
        act, ref = act[valid], logged[valid]
        sq += float(((act[:, :4] - ref[:, :4]) ** 2).mean(1).sum())
        flips += float((np.sign(act[:, 4]) != np.sign(ref[:, 4])).sum())
        n += int(valid.sum())
    n = max(n, 1)
    return {'heldout_arm_mse': sq / n, 'heldout_gripper_flip': flips / n, 'heldout_score': -sq / n,
            'heldout_episodes': len(idx), 'heldout_ticks': n}


def evaluate_checkpoint(path: str, sampler_factory, cfg: Optional[FQEConfig] = None,
                        intention: str = 'staged') -> Dict[str, Any]:
    """FQE and held-out action error of a chef checkpoint; `sampler_factory(keys)` builds the
    held-out sampler for its inputs."""
    from chef_policy.checkpoint import build_policy_from_checkpoint
    actor, net_config, _ = build_policy_from_checkpoint(path)
    sampler = sampler_factory(tuple(net_config.input_keys))
    out = fitted_q_evaluation(actor, net_config, sampler, cfg, intention)
    out.update(heldout_action_error(actor, net_config, sampler, intention))
    return out
