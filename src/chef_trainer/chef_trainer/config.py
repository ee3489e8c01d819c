"""Typed learner configs (config/learners/*.yaml), loaded with chef_contract.config.load_config.

One `LearnerConfig` describes every learner: the algorithm ('crr', 'iql', 'bc' offline; 'mpo' online),
the networks (chef_policy.networks.NetworkConfig), the TD set-up (n-step, discount, targets) and
the per-algorithm knobs. Online runs add `OnlineConfig` (replay, scheduler, acting).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple, Union

import yaml

from chef_contract.config import ConfigError, field_, load_config
from chef_contract.spec import INTENTIONS
from chef_policy.networks import NetworkConfig

ALGORITHMS = ('crr', 'iql', 'bc', 'mpo')
OFFLINE_ALGORITHMS = ('crr', 'iql', 'bc')


@dataclass
class OptimConfig:
    actor_lr: float = field_(3e-4, min=0.0, help='Adam learning rate of the actor')
    critic_lr: float = field_(3e-4, min=0.0, help='Adam learning rate of the critic')
    dual_lr: float = field_(5e-2, min=0.0, help='Adam learning rate of the MPO duals (log-parametrised)')
    adam_eps: float = field_(1e-8, min=0.0, help='Adam epsilon')
    grad_clip: float = field_(40.0, min=0.0, help='global gradient-norm clip per network (0 = off)')
    fused: bool = field_(True, help='fused Adam kernel (CPU and CUDA); False = the for-each one')


@dataclass
class CRRConfig:
    weight_mode: str = field_('exp', choices=('exp', 'binary'),
                              help='binary: 1[A > 0]; exp: min(exp(A / beta), max_weight)')
    beta: float = field_(1.0, min=1e-6, help='temperature of the exponential weights')
    max_weight: float = field_(20.0, min=0.0, help='clip of the exponential weights')
    advantage_samples: int = field_(4, min=1, max=256,
                                    help='actions sampled from the current policy for the baseline')
    advantage_estimator: str = field_('mean', choices=('mean', 'max'),
                                      help='baseline = mean (CRR "mean") or max over the samples')
    bc_weight: float = field_(0.0, min=0.0, help='weight of an added plain BC term (0 = off)')
    normalize_advantage: bool = field_(False, help='divide A by its batch std per intention before '
                                                   'weighting (beta is then in units of that std)')


@dataclass
class IQLConfig:
    expectile: float = field_(0.7, min=0.5, max=0.999,
                              help='tau of the value expectile: V_k(s) -> the tau-expectile of Q_k(s, a_data)')
    beta: float = field_(3.0, min=0.0, help='inverse temperature: w = min(exp(beta * (Q - V)), max_weight)')
    max_weight: float = field_(100.0, min=0.0, help='clip of the advantage weights')
    critics: int = field_(1, min=1, max=2, help='2: clipped double Q, the minimum of two critics '
                          '(their targets) in the value and advantage, as in the IQL paper')


@dataclass
class MPOConfig:
    action_samples: int = field_(20, min=2, max=512, help='N actions per state in the E-step')
    epsilon: float = field_(0.1, min=0.0, help='KL bound of the non-parametric E-step')
    eps_mean: float = field_(0.01, min=0.0, help='KL bound on the arm mean (decoupled M-step)')
    eps_std: float = field_(1e-4, min=0.0, help='KL bound on the arm std')
    eps_cat: float = field_(0.01, min=0.0, help='KL bound on the gripper categorical')
    init_temperature: float = field_(1.0, min=1e-6, help='initial E-step temperature eta')
    init_alpha: float = field_(1.0, min=1e-6, help='initial Lagrange multipliers alpha')
    action_penalty: float = field_(0.0, min=0.0,
                                   help='MO-MPO style penalty on |arm action| > 1 (0 = off)')


@dataclass
class LearnerConfig:
    algorithm: str = field_('crr', choices=ALGORITHMS, help='crr | iql | bc (offline), mpo (online)')
    network: NetworkConfig = field_(default_factory=NetworkConfig, help='actor/critic shapes')
    intentions: Tuple[str, ...] = field_(INTENTIONS, help='intentions learned; reward = logged term')
    batch_size: int = field_(256, min=1, help='transitions per update')
    train_on: str = field_('all', choices=('all', 'successful'),
                           help="episodes the learner samples: 'all' it is given, or only those whose "
                                'recorded success is true (filtered BC in the offline-RL literature; the '
                                'store keeps every episode either way)')
    n_step: int = field_(5, min=1, max=400, help='n of the n-step return')
    discount: float = field_(0.99, min=0.0, max=1.0, help='gamma per control tick')
    reward_scale: float = field_(1.0, min=0.0, help='multiplies every intention reward')
    td_loss: str = field_('mse', choices=('mse', 'huber'), help='critic regression loss')
    actor_loss: str = field_('nll', choices=('nll', 'mse'),
                             help="offline actor terms (CRR, BC): 'nll' = -log pi with learned spread; "
                                  "'mse' = squared error of the arm mean + gripper cross-entropy, the "
                                  'spread fit separately (losses.actor_terms)')
    next_action_samples: int = field_(4, min=1, max=256,
                                      help='samples of a ~ pi(s_{t+n}) averaged for the TD target')
    target_update_period: int = field_(100, min=0,
                                       help='hard copy to the target networks every N updates')
    target_tau: float = field_(0.0, min=0.0, max=1.0,
                               help='> 0: Polyak averaging every update instead of hard copies')
    crr: CRRConfig = field_(default_factory=CRRConfig, help='CRR actor')
    iql: IQLConfig = field_(default_factory=IQLConfig, help='IQL value expectile and actor weights')
    mpo: MPOConfig = field_(default_factory=MPOConfig, help='MPO policy improvement')
    optim: OptimConfig = field_(default_factory=OptimConfig, help='optimisers')
    image_shift_px: int = field_(0, min=0, max=32,
                                 help='pixels: DrQ random-shift augmentation of every training image '
                                      '(edge-padded by N px, cropped back at a random offset, on the '
                                      'device, uint8 kept; obs and next_obs shifted independently); '
                                      '0 = off. Training only: acting never shifts')
    state_noise_std: float = field_(0.0, min=0.0, max=1.0,
                                    help="actor's state inputs: Gaussian noise of this std (in units of "
                                         "each feature's training-data std, i.e. on the standardised "
                                         'inputs) added during training, every update; 0 = off. A '
                                         'regulariser for small datasets; acting never adds it')
    device: str = field_('auto', help="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    compile: bool = field_(False, help='torch.compile the loss computation (worth it on GPU and for '
                                       'pixels; a one-off compile cost of tens of seconds)')
    seed: int = field_(0, min=0, help='seed of torch and of the batch sampler')
    log_every: int = field_(10, min=1, help='write one metrics row every N updates')

    def __post_init__(self):
        self.intentions = tuple(self.intentions)
        if len(self.intentions) != self.network.n_intentions:
            raise ConfigError(f'network.n_intentions={self.network.n_intentions} but '
                              f'{len(self.intentions)} intentions are listed')
        if self.network.critic_atoms:
            raise ConfigError('network.critic_atoms: the learners train a scalar critic (0)')
        if self.network.action_horizon > 1 and self.algorithm == 'mpo':
            raise ConfigError('network.action_horizon: only the offline learners (bc, crr, iql) train '
                              'action chunks; mpo needs 1')


@dataclass
class OnlineConfig:
    """SAC-X style acting and replay for the online learner (and the trainer node's live replay)."""

    replay_capacity: int = field_(200_000, min=1000, help='frames kept in the in-memory replay')
    min_replay: int = field_(1000, min=1, help='transitions collected before learning starts')
    updates_per_step: float = field_(1.0, min=0.0, help='learner updates per environment step')
    switch_every: int = field_(100, min=1, help='scheduler picks a new intention every N ticks')
    scheduler: str = field_('uniform', choices=('uniform', 'learned'),
                            help='uniform = SAC-U; learned = SAC-Q (Boltzmann over main-task return)')
    scheduler_temperature: float = field_(1.0, min=1e-6, help='Boltzmann temperature of SAC-Q')
    main_intention: str = field_('staged', help='the task whose return the learned scheduler maximises')
    intention_weights: Tuple[float, ...] = field_((), help='uniform scheduler probabilities (empty = '
                                                          'uniform)')
    episode_steps: int = field_(0, min=0, help='0 = the env default (400); shorter for CI')
    live_fraction: float = field_(0.5, min=0.0, max=1.0,
                                  help='trainer node: share of each batch from the live replay')


@dataclass
class TrainerConfig:
    """A config file: the learner plus (for online runs) acting and replay."""

    learner: LearnerConfig = field_(default_factory=LearnerConfig, help='the learner')
    online: OnlineConfig = field_(default_factory=OnlineConfig, help='online acting and replay')


def load_learner_config(path: Union[str, Path, None] = None,
                        overrides: Iterable[str] = ()) -> TrainerConfig:
    """config/learners/<name>.yaml (+ `a.b=value` overrides) -> TrainerConfig."""
    return load_config(TrainerConfig, path, overrides)


def resolve_device(name: str):
    import torch
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(name)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'device {name!r} requested but CUDA is not available')
    return dev


def default_config_dir() -> Optional[Path]:
    """config/learners of the workspace (source tree), if found."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / 'config' / 'learners'
        if cand.is_dir():
            return cand
    import os
    ws = os.environ.get('CHEF_WS')
    if ws and (Path(ws) / 'config' / 'learners').is_dir():
        return Path(ws) / 'config' / 'learners'
    return None


def resolve_config_path(name: str):
    """'' -> None (defaults); an existing path -> itself; else config/learners/<name>.yaml."""
    if not name:
        return None
    if Path(name).is_file():
        return name
    cfg_dir = default_config_dir()
    cand = cfg_dir / f'{Path(name).stem}.yaml' if cfg_dir is not None else None
    if cand is not None and cand.is_file():
        return str(cand)
    known = sorted(p.stem for p in cfg_dir.glob('*.yaml')) if cfg_dir is not None else []
    raise ConfigError(f'learner config {name!r} not found (a path, or one of {known})')


def parse_filters(text: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in text.split(','))):
        if '=' not in item:
            raise ConfigError(f"filter {item!r} must look like key=value")
        k, v = item.split('=', 1)
        out[k.strip()] = yaml.safe_load(v)
    return out
