"""Loss functions of the CHEF learners, as pure tensor functions (no modules, no optimisers).

Shapes: B = batch, N = action samples per state, K = intentions (chef_contract.spec.INTENTIONS).
Every function is small enough to be checked by hand on a 2x2 case (test/test_losses.py does).

Critic (all learners):  y_k = R_k^(n) + discount * V_k^target(s_{t+n}),  loss = mean_k mean_b (Q_k - y_k)^2
CRR actor:              A_k(s, a) = Q_k(s, a) - mean_j Q_k(s, a_j),  a_j ~ pi_k(.|s)
                        optionally A_k / std_b(A_k) (normalize_advantage: beta becomes scale-free)
                        w = 1[A > 0] (binary) or min(exp(A / beta), w_max) (exponential)
                        loss = mean_{b,k} w * l_k(a | s)   (+ bc_weight * mean l_k(a | s))
Actor terms l_k:        'nll': -log pi_k(a | s) (Gaussian arm with learned spread + categorical)
                        'mse': 1/2 |a_arm - mu_k|^2 + CE(gripper) + the spread's NLL with mu
                        detached, from a detached torso (the spread never steers the mean)
MPO (online):           E-step q_k(a_j|s) ~ softmax_j(Q_k(s, a_j) / eta_k), eta_k from its dual;
                        M-step weighted maximum likelihood with decoupled KL trust regions on the arm
                        mean, arm std and gripper categorical (Abdolmaleki et al. 2018).
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from chef_contract.spec import INTENTIONS, REWARD_TERMS

ARM_DIMS = 4                      # vx, vy, vz, yaw_rate (Gaussian head)
GRIPPER_INDEX = 4                 # action[4]: > 0 close, <= 0 open (spec §B.5 bang-bang)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# --- reward relabelling ---------------------------------------------------------------------------
def intention_columns(intentions: Sequence[str] = INTENTIONS,
                      terms: Sequence[str] = REWARD_TERMS) -> Tuple[int, ...]:
    """Column of each intention's reward in a reward-term vector (intention 'x' = logged term 'x')."""
    missing = [i for i in intentions if i not in terms]
    if missing:
        raise ValueError(f'intentions {missing} have no logged reward term (terms: {list(terms)})')
    return tuple(list(terms).index(i) for i in intentions)


def intention_rewards(reward_terms: Tensor, columns: Sequence[int]) -> Tensor:
    """[..., n_terms] logged (n-step summed) reward terms -> [..., K] reward of every intention."""
    return reward_terms[..., list(columns)]


# --- policy distribution: 4-D diagonal Gaussian arm + 2-class gripper ------------------------------
def gripper_class(action: Tensor) -> Tensor:
    """Gripper class of an action in [-1, 1]^5: 1 (close) if action[4] > 0 else 0 (open)."""
    return (action[..., GRIPPER_INDEX] > 0).long()


def gaussian_log_prob(mean: Tensor, std: Tensor, x: Tensor) -> Tensor:
    """Sum over the last dim of the diagonal-Gaussian log density."""
    z = (x - mean) / std
    return (-0.5 * z * z - std.log() - _LOG_SQRT_2PI).sum(-1)


def categorical_log_prob(logits: Tensor, cls: Tensor) -> Tensor:
    """log p(cls) under softmax(logits); cls broadcasts against logits' leading dims."""
    shape = torch.broadcast_shapes(logits.shape[:-1], cls.shape)
    logp = F.log_softmax(logits, -1).expand(*shape, logits.shape[-1])
    return torch.gather(logp, -1, cls.expand(shape).unsqueeze(-1)).squeeze(-1)


def action_log_prob(mean: Tensor, std: Tensor, logits: Tensor, action: Tensor) -> Tensor:
    """log pi(action) for the mixed policy; mean/std [..., 4], logits [..., 2], action [..., 5].

    An action with one dim less than `mean` (data actions [B, 5] vs heads [B, K, 4]) is scored under
    every intention: [B, K]. Same maths as chef_policy.networks.action_log_prob (tested equal).
    """
    if action.dim() == mean.dim() - 1:
        action = action.unsqueeze(-2)
    return (gaussian_log_prob(mean, std, action[..., :ARM_DIMS])
            + categorical_log_prob(logits, gripper_class(action)))


def sample_actions(mean: Tensor, std: Tensor, logits: Tensor, n: int,
                   generator: torch.Generator | None = None) -> Tensor:
    """n samples per (state, intention): mean/std [B, K, 4], logits [B, K, 2] -> [B, n, K, 5].

    The arm part is mean + std * eps (no squashing, as the released experts act) clipped to [-1, 1];
    the gripper is +1 (close) or -1 (open) drawn from softmax(logits).
    """
    b, k, _ = mean.shape
    eps = torch.randn((b, n, k, ARM_DIMS), device=mean.device, dtype=mean.dtype, generator=generator)
    arm = (mean.unsqueeze(1) + std.unsqueeze(1) * eps).clamp(-1.0, 1.0)
    p_close = torch.softmax(logits, -1)[..., 1].unsqueeze(1).expand(b, n, k)
    u = torch.rand((b, n, k), device=mean.device, dtype=mean.dtype, generator=generator)
    grip = torch.where(u < p_close, 1.0, -1.0).to(mean.dtype).unsqueeze(-1)
    return torch.cat([arm, grip], -1)


# --- critic ------------------------------------------------------------------------------------------
def n_step_target(rewards: Tensor, discount: Tensor, next_value: Tensor) -> Tensor:
    """y = R^(n) + discount * V(s_{t+n}); rewards/next_value [B, K], discount [B] or [B, K].

    `discount` already holds gamma^m for the m <= n steps actually taken (0 after a true terminal);
    the sampler computes it, so episode ends and time-limit truncation are handled there.
    """
    if discount.dim() == 1:
        discount = discount.unsqueeze(-1)
    return rewards + discount * next_value


def td_loss(q: Tensor, target: Tensor, kind: str = 'mse') -> Tuple[Tensor, Tensor]:
    """(scalar loss, per-intention loss [K]); q and target [B, K]; target is not differentiated."""
    target = target.detach()
    if kind == 'mse':
        per = 0.5 * (q - target).pow(2)
    elif kind == 'huber':
        per = F.smooth_l1_loss(q, target, reduction='none')
    else:
        raise ValueError(f'unknown td loss {kind!r}')
    per_k = per.mean(0)
    return per_k.mean(), per_k


# --- CRR ---------------------------------------------------------------------------------------------
def advantage(q_data: Tensor, q_samples: Tensor, estimator: str = 'mean') -> Tensor:
    """A_k = Q_k(s, a_data) - {mean | max}_j Q_k(s, a_j); q_data [B, K], q_samples [B, N, K]."""
    if estimator == 'mean':
        baseline = q_samples.mean(1)
    elif estimator == 'max':
        baseline = q_samples.max(1).values
    else:
        raise ValueError(f'unknown advantage estimator {estimator!r}')
    return q_data - baseline


def crr_weights(adv: Tensor, mode: str = 'exp', beta: float = 1.0, max_weight: float = 20.0) -> Tensor:
    """CRR weights: binary 1[A > 0] or exponential min(exp(A / beta), max_weight); no gradient."""
    adv = adv.detach()
    if mode == 'binary':
        return (adv > 0).to(adv.dtype)
    if mode == 'exp':
        return torch.exp(adv / beta).clamp(max=max_weight)
    raise ValueError(f'unknown CRR weight mode {mode!r}')


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """IQL's asymmetric squared loss of diff = Q - V: |tau - 1[diff < 0]| diff^2, mean over B x K.
    Minimised by V = the tau-expectile of Q over the data's actions (tau > 0.5: an upper expectile,
    a value of the better in-sample actions without querying unseen ones)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


def iql_weights(adv: Tensor, beta: float = 3.0, max_weight: float = 100.0) -> Tensor:
    """IQL / AWR weights min(exp(beta * A), max_weight); no gradient."""
    return torch.exp(beta * adv.detach()).clamp(max=max_weight)


def normalize_advantage(adv: Tensor, eps: float = 1e-6) -> Tensor:
    """A_k / std_b(A_k) per intention (no gradient): exp-weights with one beta for any Q scale."""
    adv = adv.detach()
    return adv / adv.std(0, keepdim=True).clamp_min(eps)


def actor_terms(mean: Tensor, std: Tensor, logits: Tensor, action: Tensor, kind: str = 'mse',
                std_detached: Tensor | None = None) -> Tensor:
    """Per-sample actor loss [B, K] of the logged `action` [B, 5] under every intention.

    'nll': -log pi_k(a | s), the Gaussian arm with its learned spread + the gripper categorical.
    With a learned spread the ticks whose arm targets the policy fits best (actions clipped at +-1)
    shrink their std and dominate the gradient; 'mse' avoids that:
    1/2 |a_arm - mu_k|^2 (a unit-variance Gaussian) + CE of the gripper class, plus the spread's
    Gaussian NLL with the mean detached, computed from `std_detached` (the std head applied to a
    detached torso), so the spread is learned for exploration without steering mean or features.
    """
    if kind == 'nll':
        return -action_log_prob(mean, std, logits, action)
    if kind != 'mse':
        raise ValueError(f'unknown actor loss {kind!r}')
    act = action.unsqueeze(-2) if action.dim() == mean.dim() - 1 else action
    arm = act[..., :ARM_DIMS]
    sq = 0.5 * (arm - mean).pow(2).sum(-1)
    ce = -categorical_log_prob(logits, gripper_class(act))
    spread = std if std_detached is None else std_detached
    std_nll = -gaussian_log_prob(mean.detach(), spread, arm)
    return sq + ce + std_nll


def weighted_nll(log_prob: Tensor, weights: Tensor) -> Tensor:
    """-mean(weights * log_prob) over all entries (B x K)."""
    return -(weights.detach() * log_prob).mean()


def bc_nll(log_prob: Tensor) -> Tensor:
    return -log_prob.mean()


# --- MPO ---------------------------------------------------------------------------------------------
def mpo_estep(q_samples: Tensor, temperature: Tensor, epsilon: float) -> Tuple[Tensor, Tensor]:
    """Non-parametric E-step. q_samples [B, N, K], temperature eta [K] (> 0).

    Returns (weights [B, N, K] = softmax_j(Q / eta), no gradient; dual loss of eta):
        g(eta) = eta * epsilon + eta * mean_b log mean_j exp(Q_bj / eta)
    minimised over eta, which makes KL(q || pi_old) ~ epsilon.
    """
    q = q_samples.detach()
    scaled = q / temperature
    weights = torch.softmax(scaled, dim=1).detach()
    n = q.shape[1]
    log_mean_exp = torch.logsumexp(scaled, dim=1) - math.log(n)         # [B, K]
    dual = temperature * epsilon + temperature * log_mean_exp.mean(0)   # [K]
    return weights, dual.sum()


def gaussian_kl(mean_p: Tensor, std_p: Tensor, mean_q: Tensor, std_q: Tensor) -> Tensor:
    """KL(N(mean_p, std_p) || N(mean_q, std_q)) per element (diagonal, not summed)."""
    var_p, var_q = std_p.pow(2), std_q.pow(2)
    return torch.log(std_q / std_p) + (var_p + (mean_p - mean_q).pow(2)) / (2.0 * var_q) - 0.5


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(Cat(p) || Cat(q)) over the last dim."""
    lp, lq = F.log_softmax(logits_p, -1), F.log_softmax(logits_q, -1)
    return (lp.exp() * (lp - lq)).sum(-1)


def mpo_mstep(online: Tuple[Tensor, Tensor, Tensor], target: Tuple[Tensor, Tensor, Tensor],
              samples: Tensor, weights: Tensor, alpha: Tensor,
              eps_mean: float, eps_std: float, eps_cat: float) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Decoupled M-step. online/target = (mean [B,K,4], std [B,K,4], logits [B,K,2]);
    samples [B, N, K, 5] drawn from the target policy; weights [B, N, K] from the E-step;
    alpha [3, K] (> 0) Lagrange multipliers for the (mean, std, categorical) KL bounds.

    Policy loss = weighted NLL of (online mean, target std) + (target mean, online std) + (online
    logits) plus alpha * KL for each bound; the multipliers minimise alpha * (eps - KL), so alpha
    grows while a KL exceeds its bound and shrinks towards 0 while it is inside.
    """
    mean, std, logits = online
    t_mean, t_std, t_logits = (x.detach() for x in target)
    arm = samples[..., :ARM_DIMS]
    cls = gripper_class(samples)
    ex = lambda x: x.unsqueeze(1)                                   # noqa: E731 - [B,K,.] -> [B,1,K,.]
    lp_mean = gaussian_log_prob(ex(mean), ex(t_std), arm)           # [B, N, K]
    lp_std = gaussian_log_prob(ex(t_mean), ex(std), arm)
    lp_cat = categorical_log_prob(ex(logits), cls)
    w = weights.detach()
    nll = -(w * (lp_mean + lp_std + lp_cat)).sum(1).mean(0)         # [K]
    kl_mean = gaussian_kl(t_mean, t_std, mean, t_std).sum(-1).mean(0)   # [K]
    kl_std = gaussian_kl(t_mean, t_std, t_mean, std).sum(-1).mean(0)
    kl_cat = categorical_kl(t_logits, logits).mean(0)
    kls = torch.stack([kl_mean, kl_std, kl_cat])                    # [3, K]
    eps = torch.tensor([eps_mean, eps_std, eps_cat], dtype=kls.dtype, device=kls.device).unsqueeze(-1)
    policy_loss = nll.sum() + (alpha.detach() * kls).sum()
    alpha_loss = (alpha * (eps - kls.detach())).sum()
    stats = {'nll': nll.detach(), 'kl_mean': kl_mean.detach(), 'kl_std': kl_std.detach(),
             'kl_cat': kl_cat.detach(), 'alpha': alpha.detach()}
    return policy_loss + alpha_loss, stats
