"""The learners: CRR and BC (offline), MPO with SAC-X intentions (online). ROS-free.

Every learner owns a `MultiTaskActor` and (except BC) a `MultiTaskCritic` from chef_policy.networks,
their target copies and the optimisers, and exposes one verb:

    metrics = learner.update(batch)      # batch: the TransitionSampler dict (numpy or torch)

All K intentions learn from every transition: the reward of intention k is the logged reward term
of the same name (n-step summed by the sampler), so each batch is relabelled for every task at once.
The critic is evaluated once per state for the encoder and once per action for the shared torso
(`MultiTaskCritic.q_for_actions`), which is what makes sampled-action baselines cheap.

State for resuming (`modules()` + `resume_state()`, see chef_trainer.checkpointing): networks,
targets, optimisers, dual variables, update counter and the torch RNG; the batch sampler's numpy RNG
is kept by the caller.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch import nn

from chef_policy.networks import MultiTaskActor, MultiTaskCritic, MultiTaskValue, shift_images

from chef_trainer import losses as L
from chef_trainer.config import LearnerConfig, resolve_device

Batch = Dict[str, Any]


# --------------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------------
def batch_to_torch(batch: Mapping[str, Any], keys, device: torch.device) -> Batch:
    """Sampler batch (numpy or torch) -> tensors on `device`; only the network's observation keys.

    Images stay uint8 (the encoder scales them on the device: 4x less host-to-device traffic).
    """
    non_blocking = device.type == 'cuda'

    def t(x, dtype=None):
        x = torch.as_tensor(x)
        if dtype is not None and x.dtype != dtype and x.dtype != torch.uint8:
            x = x.to(dtype)
        if non_blocking and x.device.type == 'cpu':
            x = x.pin_memory()
        return x.to(device, non_blocking=non_blocking)

    out = {
        'obs': {k: t(batch['obs'][k], torch.float32) for k in keys},
        'next_obs': {k: t(batch['next_obs'][k], torch.float32) for k in keys},
        'action': t(batch['action'], torch.float32),
        'rewards': t(batch['rewards'], torch.float32),
        'discount': t(batch['discount'], torch.float32).reshape(-1),
    }
    if 'action_chunk' in batch:                     # action chunking: the next H logged commands
        out['action_chunk'] = t(batch['action_chunk'], torch.float32)
        out['chunk_mask'] = t(batch['chunk_mask'], torch.bool)
    for name in ('action', 'rewards', 'discount') + (('action_chunk',) if 'action_chunk' in out else ()):
        if not torch.isfinite(out[name]).all():
            raise ValueError(f'batch {name} holds non-finite values')
    return out


def check_batch_keys(batch: Mapping[str, Any], keys) -> None:
    missing = [k for k in keys if k not in batch.get('obs', {})]
    if missing:
        raise KeyError(f'batch observations lack {missing} (network reads {list(keys)})')


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def critic_q_for_actions(critic: MultiTaskCritic, features: torch.Tensor,
                         actions: torch.Tensor) -> torch.Tensor:
    """Q of several actions per state from precomputed encoder features: features [B, F],
    actions [B, S, 5] -> q [B, S, K] (MultiTaskCritic.q_for_actions: the state part of the first
    torso layer is computed once per state, not once per sampled action)."""
    return critic.q_for_actions(features, actions)


def diagonal_q(q_all: torch.Tensor) -> torch.Tensor:
    """[B, N, K(sampled from pi_k), K(critic head)] -> [B, N, K]: Q_k of actions drawn from pi_k."""
    return torch.diagonal(q_all, dim1=2, dim2=3)


def q_of_policy_samples(critic: MultiTaskCritic, features: torch.Tensor, samples: torch.Tensor):
    """samples [B, N, K, 5] (N per intention) -> Q_k(s, a_{j,k}) [B, N, K]."""
    b, n, k, _ = samples.shape
    q = critic_q_for_actions(critic, features, samples.reshape(b, n * k, -1))   # [B, N*K, K]
    return diagonal_q(q.reshape(b, n, k, -1))


def _grad_clip(params, max_norm: float) -> torch.Tensor:
    if max_norm > 0:
        return nn.utils.clip_grad_norm_(params, max_norm)
    return torch.zeros(())


def _make_adam(params, lr, cfg, device):
    kwargs = dict(lr=lr, eps=cfg.adam_eps)
    if cfg.fused:
        kwargs['fused'] = True
    try:
        return torch.optim.Adam(params, **kwargs)
    except (RuntimeError, TypeError):        # fused not supported for this device / dtype
        kwargs.pop('fused', None)
        return torch.optim.Adam(params, **kwargs)


# --------------------------------------------------------------------------------------------------
# base
# --------------------------------------------------------------------------------------------------
class Learner:
    """Shared machinery: networks, targets, optimisers, state for resume, metrics."""

    algorithm = 'base'
    uses_critic = True

    def __init__(self, config: LearnerConfig, device: Optional[str] = None):
        self.config = config
        self.device = resolve_device(device or config.device)
        torch.manual_seed(config.seed)
        net = config.network
        self.keys = tuple(net.input_keys) + tuple(net.image_keys)
        self.image_keys = tuple(net.image_keys)
        self.columns = L.intention_columns(config.intentions)
        self.actor = MultiTaskActor(net).to(self.device)
        self.actor.encoder.train_noise_std = config.state_noise_std    # training mode only (acting: eval)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_actor.encoder.train_noise_std = 0.0
        self.actor_opt = _make_adam(self.actor.parameters(), config.optim.actor_lr, config.optim, self.device)
        if self.uses_critic:
            self.critic = MultiTaskCritic(net).to(self.device)
            self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
            self.critic_opt = _make_adam(self.critic.parameters(), config.optim.critic_lr, config.optim,
                                         self.device)
        self.steps = 0
        self._loss_fn = self._losses
        if config.compile:
            self._loss_fn = torch.compile(self._losses, dynamic=False)

    # --- to implement ------------------------------------------------------------------------------
    def _losses(self, b: Batch) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def _extra_state(self) -> Dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    # --- one update --------------------------------------------------------------------------------
    def update(self, batch: Mapping[str, Any]) -> Dict[str, float]:
        """One gradient step on every network from one batch; returns scalar metrics."""
        check_batch_keys(batch, self.keys)
        b = batch if isinstance(batch.get('action'), torch.Tensor) and batch['action'].device == self.device \
            else batch_to_torch(batch, self.keys, self.device)
        enc = self.actor.encoder
        if enc.state_keys:                   # the poses converted once for every network of the learner
            b = dict(b, obs=enc.with_state_vector(b['obs']))
            if self.uses_critic:
                b['next_obs'] = enc.with_state_vector(b['next_obs'])
        pad = self.config.image_shift_px
        if pad and self.image_keys:          # DrQ: a fresh random shift of every image, every update
            b = dict(b, obs=shift_images(b['obs'], self.image_keys, pad))
            if self.uses_critic:             # (BC never reads next_obs)
                b['next_obs'] = shift_images(b['next_obs'], self.image_keys, pad)
        self._zero_grad()
        out = self._loss_fn(b)
        out['loss'].backward()
        self._step_optimisers(out)
        self.steps += 1
        self._update_targets()
        return out

    def _zero_grad(self):
        self.actor_opt.zero_grad(set_to_none=True)
        if self.uses_critic:
            self.critic_opt.zero_grad(set_to_none=True)

    def _step_optimisers(self, out):
        clip = self.config.optim.grad_clip
        out['actor_grad_norm'] = _grad_clip(self.actor.parameters(), clip)
        self.actor_opt.step()
        if self.uses_critic:
            out['critic_grad_norm'] = _grad_clip(self.critic.parameters(), clip)
            self.critic_opt.step()

    @torch.no_grad()
    def _update_targets(self):
        pairs = [(self.actor, self.target_actor)]
        if self.uses_critic:
            pairs.append((self.critic, self.target_critic))
        tau = self.config.target_tau
        if tau > 0:
            for online, target in pairs:
                for p, tp in zip(online.parameters(), target.parameters()):
                    tp.lerp_(p, tau)
        elif self.config.target_update_period and self.steps % self.config.target_update_period == 0:
            for online, target in pairs:
                target.load_state_dict(online.state_dict())

    # --- input standardisation ----------------------------------------------------------------------
    @staticmethod
    def _stats_ready(module: nn.Module) -> bool:
        enc = module.encoder
        return not enc.state_keys or bool(enc.state_stats_ready)

    @property
    def state_statistics_ready(self) -> bool:
        """Every network's state standardisation is set (False for a run from scratch, and for the
        networks a fine-tuning checkpoint did not hold: a BC student's critics and value)."""
        return all(self._stats_ready(m) for m in self.modules().values())

    def fit_state_statistics(self, batch: Mapping[str, Any]) -> None:
        """Standardise the state inputs of every network (online and target) that has no statistics
        yet from `batch['obs']`; networks loaded from a checkpoint keep theirs."""
        obs = batch_to_torch(dict(batch, next_obs=batch['obs']), self.keys, self.device)['obs']
        for m in self.modules().values():
            if not self._stats_ready(m):
                m.encoder.fit_state_statistics(obs)

    # --- offline actor ------------------------------------------------------------------------------
    def _actor_terms(self, b: Batch):
        """(mean, std, logits, per-sample actor loss [B, K]) of the logged actions
        (LearnerConfig.actor_loss, losses.actor_terms)."""
        if self.actor.horizon > 1:
            return self._chunk_actor_terms(b)
        if self.config.actor_loss == 'mse':
            mean, std, logits, std_detached = self.actor.forward_with_detached_std(b['obs'])
        else:
            (mean, std, logits), std_detached = self.actor(b['obs']), None
        terms = L.actor_terms(mean, std, logits, b['action'], self.config.actor_loss, std_detached)
        return mean, std, logits, terms

    def _chunk_actor_terms(self, b: Batch):
        """Action chunking: the actor terms of the next H logged commands, averaged over the ones
        the episode holds (chunk_mask), per sample and intention [B, K]; mean/std/logits are step
        0's (this tick's command), which the critic-based parts read."""
        h = self.actor.horizon
        if 'action_chunk' not in b or b['action_chunk'].shape[1] < h:
            raise ValueError(f'network.action_horizon={h} needs batches with action_chunk of >= {h} '
                             'commands (TransitionSampler(action_horizon=...))')
        chunk, mask = b['action_chunk'][:, None, :h], b['chunk_mask'][:, None, :h].float()   # [B,1,H,.]
        if self.config.actor_loss == 'mse':
            mean, std, logits, std_detached = self.actor.forward_chunk_with_detached_std(b['obs'])
        else:
            (mean, std, logits), std_detached = self.actor.forward_chunk(b['obs']), None
        per_step = L.actor_terms(mean, std, logits, chunk, self.config.actor_loss, std_detached)  # [B,K,H]
        terms = (per_step * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)
        return mean[..., 0, :], std[..., 0, :], logits[..., 0, :], terms

    # --- common TD pieces ---------------------------------------------------------------------------
    def _td_target(self, b: Batch) -> torch.Tensor:
        """y_k = R_k^(n) + discount * E_{a ~ pi_k^target(s')} Q_k^target(s', a)   [B, K]."""
        with torch.no_grad():
            rewards = L.intention_rewards(b['rewards'], self.columns) * self.config.reward_scale
            mean, std, logits = self.target_actor(b['next_obs'])
            samples = L.sample_actions(mean, std, logits, self.config.next_action_samples)
            features = self.target_critic.encoder(b['next_obs'])
            next_v = q_of_policy_samples(self.target_critic, features, samples).mean(1)
            return L.n_step_target(rewards, b['discount'], next_v)

    # --- state for checkpoints ----------------------------------------------------------------------
    def modules(self) -> Dict[str, nn.Module]:
        out = {'actor': self.actor, 'target_actor': self.target_actor}
        if self.uses_critic:
            out.update(critic=self.critic, target_critic=self.target_critic)
        return out

    def optimisers(self) -> Dict[str, torch.optim.Optimizer]:
        out = {'actor_opt': self.actor_opt}
        if self.uses_critic:
            out['critic_opt'] = self.critic_opt
        return out

    def resume_state(self) -> Dict[str, Any]:
        """Everything but the networks needed to resume: optimisers, duals, update count, RNG.

        Only tensors and primitive types (what chef_policy.checkpoint accepts in `extra`).
        """
        state: Dict[str, Any] = {
            'algorithm': self.algorithm,
            'steps': self.steps,
            'optim': {k: o.state_dict() for k, o in self.optimisers().items()},
            'torch_rng': torch.get_rng_state(),
            'extra': self._extra_state(),
        }
        if self.device.type == 'cuda':
            state['cuda_rng'] = torch.cuda.get_rng_state(self.device)
        return state

    def load_modules(self, modules: Mapping[str, Mapping[str, torch.Tensor]],
                     require: tuple = ('actor',)) -> list:
        """Load network weights; returns the names loaded.

        A missing target copy starts from its online network; a module missing altogether (e.g. the
        critic when fine-tuning CRR from a BC checkpoint) keeps its fresh initialisation unless it
        is in `require`.
        """
        loaded = []
        for k, m in self.modules().items():
            src = k if k in modules else (k[len('target_'):] if k.startswith('target_') else None)
            if src in modules:
                m.load_state_dict(modules[src])
                loaded.append(k)
            elif k in require:
                raise KeyError(f'checkpoint lacks module {k!r} (has {sorted(modules)})')
        return loaded

    def load_resume_state(self, state: Mapping[str, Any]) -> None:
        if state.get('algorithm') not in (None, self.algorithm):
            raise ValueError(f'resume state of a {state["algorithm"]!r} learner, this is {self.algorithm!r}')
        for k, o in self.optimisers().items():
            if k in state.get('optim', {}):
                o.load_state_dict(state['optim'][k])
        self.steps = int(state.get('steps', 0))
        if 'torch_rng' in state:
            torch.set_rng_state(state['torch_rng'].cpu())
        if 'cuda_rng' in state and self.device.type == 'cuda':
            torch.cuda.set_rng_state(state['cuda_rng'].cpu(), self.device)
        self._load_extra_state(state.get('extra', {}))


# --------------------------------------------------------------------------------------------------
# offline
# --------------------------------------------------------------------------------------------------
def _arm_mse(mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Mean squared error of every head's arm mean against the logged arm action (a metric)."""
    return (mean.detach() - action[:, None, :L.ARM_DIMS]).pow(2).mean()


class BCLearner(Learner):
    """Behaviour cloning baseline: maximise log pi_k(a | s) of the logged action, every intention."""

    algorithm = 'bc'
    uses_critic = False

    def _losses(self, b):
        mean, std, logits, terms = self._actor_terms(b)
        loss = terms.mean()
        return {'loss': loss, 'bc_loss': loss.detach(), 'policy_std': std.detach().mean(),
                'arm_mse': _arm_mse(mean, b['action'])}


class CRRLearner(Learner):
    """Critic Regularized Regression (Wang et al. 2020), multi-task, n-step, target networks.

    critic: TD on every intention's relabelled reward; actor: CRR-weighted log-likelihood of the
    logged action, A = Q(s, a) - mean/max_j Q(s, a_j) with a_j ~ pi_k(s); optional extra BC term.
    """

    algorithm = 'crr'

    def _losses(self, b):
        cfg = self.config
        target = self._td_target(b)
        features = self.critic.encoder(b['obs'])
        q = critic_q_for_actions(self.critic, features, b['action'].unsqueeze(1)).squeeze(1)   # [B, K]
        critic_loss, per_k = L.td_loss(q, target, cfg.td_loss)

        mean, std, logits, terms = self._actor_terms(b)                # terms [B, K]
        with torch.no_grad():
            samples = L.sample_actions(mean, std, logits, cfg.crr.advantage_samples)
            q_s = q_of_policy_samples(self.critic, features.detach(), samples)
            adv = L.advantage(q.detach(), q_s, cfg.crr.advantage_estimator)
            scaled = L.normalize_advantage(adv) if cfg.crr.normalize_advantage else adv
            w = L.crr_weights(scaled, cfg.crr.weight_mode, cfg.crr.beta, cfg.crr.max_weight)
        actor_loss = (w * terms).mean()
        if cfg.crr.bc_weight > 0:
            actor_loss = actor_loss + cfg.crr.bc_weight * terms.mean()
        lp = -terms.detach()
        return {
            'loss': critic_loss + actor_loss,
            'critic_loss': critic_loss.detach(), 'actor_loss': actor_loss.detach(),
            'q_mean': q.detach().mean(), 'target_mean': target.mean(),
            'adv_mean': adv.mean(), 'adv_std': adv.std(), 'adv_pos_frac': (adv > 0).float().mean(),
            'weight_mean': w.mean(), 'weight_max': w.max(), 'actor_terms': -lp.mean(),
            'policy_std': std.detach().mean(), 'arm_mse': _arm_mse(mean, b['action']),
            'q_per_intention': q.detach().mean(0), 'critic_loss_per_intention': per_k.detach(),
        }


class IQLLearner(Learner):
    """Implicit Q-learning (Kostrikov et al. 2021), multi-task, n-step, on the shared-critic design.

    value: V_k(s) regressed to the `expectile` of Q_k^target(s, a_data) (in-sample, no policy
    samples); critic: TD to R_k^(n) + discount * V_k(s_{t+n}); actor: the logged action's actor
    terms weighted min(exp(beta * (Q_k^target(s, a) - V_k(s))), max_weight). Unlike CRR nothing
    queries the critic at actions the data does not hold, so a young critic cannot reward
    out-of-distribution samples.
    """

    algorithm = 'iql'

    def __init__(self, config: LearnerConfig, device: Optional[str] = None):
        super().__init__(config, device)
        self.value = MultiTaskValue(config.network).to(self.device)
        self.value_opt = _make_adam(self.value.parameters(), config.optim.critic_lr, config.optim, self.device)
        self.critic2 = self.target_critic2 = None
        if config.iql.critics == 2:
            torch.manual_seed(config.seed + 1)
            self.critic2 = MultiTaskCritic(config.network).to(self.device)
            self.target_critic2 = copy.deepcopy(self.critic2).requires_grad_(False)
            self.critic2_opt = _make_adam(self.critic2.parameters(), config.optim.critic_lr, config.optim,
                                          self.device)

    def _losses(self, b):
        cfg = self.config
        with torch.no_grad():
            rewards = L.intention_rewards(b['rewards'], self.columns) * cfg.reward_scale
            target = L.n_step_target(rewards, b['discount'], self.value(b['next_obs']))
            q_target = self.target_critic(b['obs'], b['action'])                           # [B, K]
            if self.critic2 is not None:
                q_target = torch.minimum(q_target, self.target_critic2(b['obs'], b['action']))
        features = self.critic.encoder(b['obs'])
        q = critic_q_for_actions(self.critic, features, b['action'].unsqueeze(1)).squeeze(1)   # [B, K]
        critic_loss, per_k = L.td_loss(q, target, cfg.td_loss)
        if self.critic2 is not None:
            q2 = self.critic2(b['obs'], b['action'])
            critic_loss = critic_loss + L.td_loss(q2, target, cfg.td_loss)[0]
        v = self.value(b['obs'])
        value_loss = L.expectile_loss(q_target - v, cfg.iql.expectile)
        adv = q_target - v.detach()
        w = L.iql_weights(adv, cfg.iql.beta, cfg.iql.max_weight)
        mean, std, logits, terms = self._actor_terms(b)
        actor_loss = (w * terms).mean()
        return {
            'loss': critic_loss + value_loss + actor_loss,
            'critic_loss': critic_loss.detach(), 'value_loss': value_loss.detach(),
            'actor_loss': actor_loss.detach(), 'q_mean': q.detach().mean(), 'v_mean': v.detach().mean(),
            'target_mean': target.mean(), 'adv_mean': adv.mean(), 'adv_std': adv.std(),
            'adv_pos_frac': (adv > 0).float().mean(), 'weight_mean': w.mean(), 'weight_max': w.max(),
            'actor_terms': terms.detach().mean(), 'policy_std': std.detach().mean(),
            'arm_mse': _arm_mse(mean, b['action']),
            'q_per_intention': q.detach().mean(0), 'critic_loss_per_intention': per_k.detach(),
        }

    def modules(self):
        out = super().modules()
        out['value'] = self.value
        if self.critic2 is not None:
            out.update(critic2=self.critic2, target_critic2=self.target_critic2)
        return out

    def optimisers(self):
        out = super().optimisers()
        out['value_opt'] = self.value_opt
        if self.critic2 is not None:
            out['critic2_opt'] = self.critic2_opt
        return out

    def _zero_grad(self):
        super()._zero_grad()
        self.value_opt.zero_grad(set_to_none=True)
        if self.critic2 is not None:
            self.critic2_opt.zero_grad(set_to_none=True)

    def _step_optimisers(self, out):
        super()._step_optimisers(out)
        out['value_grad_norm'] = _grad_clip(self.value.parameters(), self.config.optim.grad_clip)
        self.value_opt.step()
        if self.critic2 is not None:
            _grad_clip(self.critic2.parameters(), self.config.optim.grad_clip)
            self.critic2_opt.step()

    @torch.no_grad()
    def _update_targets(self):
        super()._update_targets()
        if self.critic2 is not None:
            tau = self.config.target_tau
            if tau > 0:
                for p, tp in zip(self.critic2.parameters(), self.target_critic2.parameters()):
                    tp.lerp_(p, tau)
            elif self.config.target_update_period and self.steps % self.config.target_update_period == 0:
                self.target_critic2.load_state_dict(self.critic2.state_dict())


# --------------------------------------------------------------------------------------------------
# online
# --------------------------------------------------------------------------------------------------
class MPOLearner(Learner):
    """MPO (Abdolmaleki et al. 2018) for every SAC-X intention at once, from one shared replay.

    E-step: N actions per state and intention from the target policy, weights softmax(Q^target / eta_k)
    with eta_k from its convex dual (KL bound epsilon). M-step: weighted maximum likelihood with
    decoupled KL trust regions on the arm mean, arm std and the gripper categorical (Lagrange
    multipliers alpha learned). Critic: n-step expected-SARSA TD against the target networks.
    """

    algorithm = 'mpo'

    def __init__(self, config: LearnerConfig, device: Optional[str] = None):
        super().__init__(config, device)
        k = config.network.n_intentions
        m = config.mpo
        # log-parametrised duals: Adam then changes eta and alpha by a bounded *factor* per update,
        # so they adapt to any reward scale in a few dozen updates.
        self.temperature_param = nn.Parameter(
            torch.full((k,), math.log(m.init_temperature), device=self.device))
        self.alpha_param = nn.Parameter(torch.full((3, k), math.log(m.init_alpha), device=self.device))
        self.dual_opt = _make_adam([self.temperature_param, self.alpha_param], config.optim.dual_lr,
                                   config.optim, self.device)

    def _duals(self):
        return (self.temperature_param.clamp(-18.0, 18.0).exp(),
                self.alpha_param.clamp(-18.0, 18.0).exp())

    def _losses(self, b):
        cfg, m = self.config, self.config.mpo
        target = self._td_target(b)
        features = self.critic.encoder(b['obs'])
        q = critic_q_for_actions(self.critic, features, b['action'].unsqueeze(1)).squeeze(1)
        critic_loss, per_k = L.td_loss(q, target, cfg.td_loss)

        temperature, alpha = self._duals()
        with torch.no_grad():
            t_mean, t_std, t_logits = self.target_actor(b['obs'])
            samples = L.sample_actions(t_mean, t_std, t_logits, m.action_samples)   # [B, N, K, 5]
            t_features = self.target_critic.encoder(b['obs'])
            q_s = q_of_policy_samples(self.target_critic, t_features, samples)     # [B, N, K]
        weights, temp_loss = L.mpo_estep(q_s, temperature, m.epsilon)
        online = self.actor(b['obs'])
        m_loss, st = L.mpo_mstep(online, (t_mean, t_std, t_logits), samples, weights, alpha,
                                 m.eps_mean, m.eps_std, m.eps_cat)
        policy_loss = m_loss
        if m.action_penalty > 0:
            over = (online[0].abs() - 1.0).clamp(min=0)
            policy_loss = policy_loss + m.action_penalty * over.pow(2).mean()
        ess = 1.0 / (weights.pow(2).sum(1)).mean()                      # effective samples of q
        return {
            'loss': critic_loss + policy_loss + temp_loss,
            'critic_loss': critic_loss.detach(), 'policy_loss': m_loss.detach(),
            'temperature_loss': temp_loss.detach(),
            'q_mean': q.detach().mean(), 'target_mean': target.mean(),
            'q_sample_std': q_s.std(1).mean(), 'estep_ess': ess,
            'temperature_mean': temperature.detach().mean(),
            'kl_mean': st['kl_mean'].mean(), 'kl_std': st['kl_std'].mean(), 'kl_cat': st['kl_cat'].mean(),
            'alpha_mean': st['alpha'].mean(), 'policy_std': online[1].detach().mean(),
            'q_per_intention': q.detach().mean(0), 'critic_loss_per_intention': per_k.detach(),
        }

    def _zero_grad(self):
        super()._zero_grad()
        self.dual_opt.zero_grad(set_to_none=True)

    def _step_optimisers(self, out):
        super()._step_optimisers(out)
        self.dual_opt.step()

    def optimisers(self):
        out = super().optimisers()
        out['dual_opt'] = self.dual_opt
        return out

    def _extra_state(self):
        return {'temperature_param': self.temperature_param.detach().clone(),
                'alpha_param': self.alpha_param.detach().clone()}

    def _load_extra_state(self, state):
        with torch.no_grad():
            if 'temperature_param' in state:
                self.temperature_param.copy_(state['temperature_param'])
            if 'alpha_param' in state:
                self.alpha_param.copy_(state['alpha_param'])


LEARNERS = {'bc': BCLearner, 'crr': CRRLearner, 'iql': IQLLearner, 'mpo': MPOLearner}


def make_learner(config: LearnerConfig, device: Optional[str] = None) -> Learner:
    try:
        cls = LEARNERS[config.algorithm]
    except KeyError:
        raise ValueError(f'unknown algorithm {config.algorithm!r}; known: {list(LEARNERS)}') from None
    return cls(config, device)


def scalar_metrics(out: Mapping[str, Any], intentions=None) -> Dict[str, float]:
    """Loss dict -> {name: float}; per-intention vectors become name/<intention> entries."""
    res: Dict[str, float] = {}
    for k, v in out.items():
        if isinstance(v, torch.Tensor):
            v = v.detach()
            if v.dim() == 0:
                res[k] = float(v)
            else:
                names = intentions or [str(i) for i in range(v.numel())]
                for name, x in zip(names, v.flatten().tolist()):
                    res[f'{k}/{name}'] = float(x)
        elif isinstance(v, (int, float, np.floating)):
            res[k] = float(v)
    return res
