"""Typed configuration of a CHEF run (config/chef/*.yaml); unknown keys are errors.

The defaults are the README's small iteration (<= 20 min on 2 CPU cores); config/chef/large.yaml is
the documented larger run. Every size is configurable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from chef_contract.config import ConfigError, field_, load_config
from chef_contract.domains import DEFAULT_DOMAIN_RANGE_TEXT, domain_range, parse_domain_range
from chef_contract.spec import REAL_STATE_OBSERVATION_NAMES, TEST_TRIPLETS
from chef_loop.cluster import ClusterConfig, check_cluster

REAL_KEYS = frozenset(REAL_STATE_OBSERVATION_NAMES)

TEST_TRIPLET_NAMES: Tuple[str, ...] = tuple(TEST_TRIPLETS)
STAGES = ('collect', 'explore', 'execute', 'finetune')


@dataclass
class CellsConfig:
    backend: str = field_('sim', choices=('sim', 'real'),
                          help="sim: MuJoCo cells (config/graphs/sim.yaml, one graph for all cells); real: one "
                               "real-cell graph per cell (config/graphs/real.yaml; chef_loop.backends)")
    hardware: str = field_('mujoco', choices=('mujoco', 'real', 'mock'),
                           help="backend real: the graph's hardware argument (mujoco = chef_sim's emulator of "
                                'the drivers and Servo; real = the lab cell)')
    triplet: str = field_('rgb_test_triplet1', help='backend real: the triplet physically in every cell; every '
                                                     'stage triplet must be this one')
    reset_mode: str = field_('service', choices=('moveit', 'service', 'manual', 'none'),
                             help="backend real: the episode manager's reset between episodes")
    real_graph_args: Dict[str, str] = field_(default_factory=dict,
                                             help="backend real: extra real-graph arguments (e.g. "
                                                  "{grasp_stall_velocity_rps: '0.3'})")
    cells: int = field_(2, min=1, max=32, help='simulated cells run in parallel (namespaces cell0..)')
    preset: str = field_('fast', choices=('faithful', 'fast'), help='sim physics preset (docs/sim.md)')
    image_size: int = field_(64, min=16, max=512, help='camera images recorded (px, square)')
    images: bool = field_(True, help='sim cells render, publish and record the cameras (false: state-only '
                                     'episodes, faster ticks; policies from pixels need true)')
    clock: str = field_('lockstep', choices=('lockstep', 'realtime'), help='sim clock of the cells')
    episode_steps: int = field_(400, min=10, help='control ticks per episode: the benchmark\'s 400 '
                                                  '(20 s); shorter only for tests')
    episode_timeout_s: float = field_(240.0, min=10.0, help='wall time an episode may take before '
                                                            'the loop gives up on the cell')
    start_timeout_s: float = field_(120.0, min=5.0, help='wall time for the cells to come up')
    domain_range: str = field_(DEFAULT_DOMAIN_RANGE_TEXT,
                               help='ROS domain ids the graph sessions draw from, LO-HI inclusive '
                                    '(0-232; the ROS docs call 0-101 and 215-232 safe on Linux, 102-214 '
                                    'share ports with the kernel\'s ephemeral range); the environment '
                                    'variable CHEF_DOMAIN_RANGE overrides it')


@dataclass
class CollectConfig:
    learner_config: str = field_('mpo_sacx_state.yaml', help='online learner (config/learners/)')
    learner_overrides: List[str] = field_(default_factory=list, help='a.b=value overrides')
    episodes: int = field_(4, min=0, help='episodes acted by the online learner (all cells together)')
    max_updates: int = field_(2000, min=0, help='online learner updates during the stage (0 = no cap)')
    scripted_episodes: int = field_(6, min=0, help='extra data source: the scripted expert with noise, '
                                                   'tagged data_source=scripted_expert (0 = off)')
    scripted_noise: float = field_(0.3, min=0.0, help='action noise of the scripted expert (normalised)')
    triplets: List[str] = field_(default_factory=lambda: list(TEST_TRIPLET_NAMES),
                                 help='triplets the episodes cycle through')


@dataclass
class ExploreConfig:
    learner_config: str = field_('crr_state_ci.yaml', help='offline learner base config (config/learners/)')
    learner_overrides: List[str] = field_(default_factory=list, help='a.b=value overrides of the base')
    trials: int = field_(4, min=1, help='configurations sampled from the search space')
    steps: int = field_(1500, min=1, help='updates per trial')
    steps_per_algorithm: Dict[str, int] = field_(
        default_factory=dict,
        help="updates per trial of the named learner.algorithm in place of `steps`, e.g. {bc: 40000}: a BC "
             "update (no critic) costs ~1/5 of an IQL update, so equal updates starve the cheaper "
             "learner of the stage's wall-clock")
    max_concurrent: int = field_(2, min=1, help='trials run at once')
    search_space: Dict[str, Dict[str, List]] = field_(
        default_factory=lambda: {
            'learner.crr.weight_mode': {'choice': ['exp', 'binary']},
            'learner.crr.beta': {'loguniform': [0.3, 3.0]},
            'learner.optim.actor_lr': {'loguniform': [1e-4, 1e-3]},
        },
        help="dotted learner key -> {choice: [...]} | {uniform: [lo, hi]} | {loguniform: [lo, hi]} | "
             "{randint: [lo, hi]}")
    select_metric: str = field_('fqe_value', help='offline score that ranks trials: fqe_value = fitted Q '
                                'evaluation of the staged head on the held-out episodes '
                                '(chef_trainer.ope; fqe_initial_value: first states only); '
                                'heldout_score = minus the staged head\'s arm squared error against the '
                                'commands of the held-out episodes that succeeded (same pass); '
                                'policy_value = the trial\'s own critic, Q_staged(s, mu_staged(s)) over '
                                "data states; or any metric of the trial's summary.json")
    holdout_fraction: float = field_(0.1, min=0.0, max=0.5,
                                     help='episodes held out of trial training for the offline score '
                                          '(chosen by a stable hash of the episode id; 0 = none, FQE '
                                          'then runs on the training episodes); fine-tune uses all')
    fqe_updates: int = field_(2000, min=1, help='FQE critic updates per trial')
    select_mode: str = field_('max', choices=('max', 'min'), help='larger or smaller metric is better')
    candidates: int = field_(2, min=1, help='top trials that go on to Execute')
    ensemble: int = field_(0, min=0, help='k >= 2: the k best-scored trials also go to Execute acting as one '
                           'policy, explore-<i>-ens<k> (an ensemble manifest, chef_policy.ensemble: mean arm '
                           'command, majority gripper); fine-tune then trains each member. No extra '
                           'training, one more candidate to execute; 0 = off')
    ray_address: str = field_('', help="'' = a local Ray; 'auto' or ray://host:10001 = a cluster")
    cpus_per_trial: float = field_(1.0, min=0.1, help='Ray resources per trial')
    torch_threads: int = field_(1, min=1, help='torch threads inside each trial')
    checkpoint_every: int = field_(250, min=0, help='updates between a trial\'s checkpoints (optimisers, '
                                   'update count and RNG states included): a killed trial resumes from '
                                   'its newest one and loses at most this many updates (0 = only at the end)')


@dataclass
class ExecuteConfig:
    episodes_per_triplet: int = field_(2, min=1, help='evaluation episodes per test triplet per candidate')
    triplets: List[str] = field_(default_factory=lambda: list(TEST_TRIPLET_NAMES),
                                 help='triplets evaluated')
    deterministic: bool = field_(True, help='act with the mean action (False: sample)')
    include_previous_best: bool = field_(True, help='iteration k > 0 also executes iteration k-1\'s best '
                                                    'policy on the same seeds, so the chosen policy '
                                                    'never gets worse from one iteration to the next')


@dataclass
class FinetuneConfig:
    steps: int = field_(750, min=0, help='updates continuing the best policy on all data (0 = skip)')
    checkpoint_every: int = field_(250, min=0, help='updates between checkpoints of the fine-tuning run '
                                   '(resumed from the newest after a kill; 0 = only at the end)')
    episodes_per_triplet: int = field_(2, min=0, help='evaluation episodes per test triplet')
    learner_overrides: List[str] = field_(default_factory=list,
                                          help='a.b=value overrides added to the selected policy\'s own '
                                               'config for fine-tuning, e.g. [\'learner.algorithm="iql"\'] '
                                               'improves a BC student with IQL (networks the checkpoint '
                                               'lacks, the critics and value, start fresh)')
    scratch_baseline: bool = field_(False, help='also train the best config from scratch for the '
                                                'same number of updates and evaluate it (compute '
                                                'comparison; costs one more training and evaluation)')


@dataclass
class LoopConfig:
    name: str = field_('default', help='run name: runs/<name>/')
    runs_dir: str = field_('runs', help='parent directory of run directories')
    data_dir: str = field_('', help="episode store shared by every stage ('' = runs/<name>/data); "
                                    'point several runs at one store to accumulate data')
    iterations: int = field_(1, min=1, max=1000, help='CHEF iterations (collect -> ... -> finetune)')
    seed: int = field_(0, min=0, help='seeds episodes and trials')
    cells: CellsConfig = field(default_factory=CellsConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    execute: ExecuteConfig = field(default_factory=ExecuteConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    observation: str = field_('state', choices=('state', 'pixels'),
                              help='policy inputs: privileged state (sim only, fast) or pixels + '
                                   'real-robot state (the paper\'s setting)')
    ray_address: str = field_('', help="'' = this machine; 'auto' or ray://host:10001 = every stage on that "
                                       'Ray cluster: sim cells as Ray actors, Explore trials and Fine-tune '
                                       'as Ray tasks (chef_loop.cluster, docs/loop.md)')
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else self.run_dir / 'data'


def config_dir() -> Path:
    from chef_contract.graph import default_config_dir
    return default_config_dir()


def resolve_config_path(name: Union[str, Path, None]) -> Optional[Path]:
    """'default' | 'large' | a path -> config file (config/chef/<name>.yaml)."""
    if name is None:
        return None
    p = Path(name)
    if p.is_file():
        return p
    cand = config_dir() / 'chef' / f'{name}.yaml'
    if cand.is_file():
        return cand
    known = sorted(x.stem for x in (config_dir() / 'chef').glob('*.yaml'))
    raise ConfigError(f'no CHEF config {name!r} (known in config/chef: {known})')


def load_loop_config(name: Union[str, Path, None] = 'default', overrides=()) -> LoopConfig:
    cfg = load_config(LoopConfig, resolve_config_path(name), overrides)
    parse_domain_range(cfg.cells.domain_range, 'cells.domain_range')
    domain_range(cfg.cells.domain_range)          # a bad CHEF_DOMAIN_RANGE fails here, in one line
    for t in cfg.execute.triplets + cfg.collect.triplets:
        if t not in TEST_TRIPLETS and not t.startswith('rgb_'):
            raise ConfigError(f'unknown triplet {t!r}')
    check_policy_inputs(cfg)
    check_steps_per_algorithm(cfg.explore)
    check_ensemble(cfg.explore)
    check_cluster(cfg)
    if cfg.cells.backend == 'real':
        from chef_loop.backends import check_real_cells
        check_real_cells(cfg)
    return cfg


def check_steps_per_algorithm(e: ExploreConfig) -> None:
    from chef_trainer.config import OFFLINE_ALGORITHMS
    for algo, steps in e.steps_per_algorithm.items():
        if algo not in OFFLINE_ALGORITHMS:
            raise ConfigError(f'explore.steps_per_algorithm: unknown offline algorithm {algo!r} '
                              f'(known: {", ".join(OFFLINE_ALGORITHMS)})')
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f'explore.steps_per_algorithm.{algo}: a positive number of updates, got {steps!r}')


def check_ensemble(e: ExploreConfig) -> None:
    if e.ensemble == 1 or e.ensemble > e.trials:
        raise ConfigError(f'explore.ensemble: 0 (off) or 2..trials ({e.trials}) members, got {e.ensemble}')
    searched = [k for k in e.search_space if k.startswith('learner.network.')]
    if e.ensemble and searched:
        raise ConfigError(f'explore.ensemble: members must read the same inputs, but the search space varies '
                          f'{searched}')


def trial_steps(e: ExploreConfig, overrides: List[str]) -> int:
    """Updates of one explore trial: `steps_per_algorithm` of the algorithm its learner config and
    `overrides` (base overrides + the trial's own) resolve to, else `steps`."""
    if not e.steps_per_algorithm:
        return e.steps
    from chef_trainer.config import load_learner_config
    algo = load_learner_config(learner_config_path(e.learner_config), list(overrides)).learner.algorithm
    return int(e.steps_per_algorithm.get(algo, e.steps))


def _network_variants(cfg: LoopConfig) -> List[Tuple[str, List[str]]]:
    """(what, learner overrides) of every network the loop's offline stages can train: the explore
    base, each choice of a searched learner.network key, and fine-tuning's added overrides."""
    import json
    e = cfg.explore
    out = [('explore.learner_config', list(e.learner_overrides))]
    for key, spec in sorted(e.search_space.items()):
        if key.startswith('learner.network.') and 'choice' in spec:
            out += [(f'explore.search_space.{key}={v!r}', list(e.learner_overrides) + [f'{key}={json.dumps(v)}'])
                    for v in spec['choice']]
    if cfg.finetune.learner_overrides:
        out.append(('finetune.learner_overrides', list(e.learner_overrides) + list(cfg.finetune.learner_overrides)))
    return out


def check_policy_inputs(cfg: LoopConfig) -> None:
    """`observation` is what the loop's offline policies read: every network explore and fine-tune
    can train has that obs_mode, and a pixels run's networks read no privileged sim key (object
    poses), so its policies run on a real cell. FQE (chef_trainer.ope) scores state networks only, so
    a pixels run ranks its trials by a summary metric. The online Collect learner is checked too
    when it acts (collect.episodes > 0)."""
    from chef_trainer.config import load_learner_config
    checks = [(what, cfg.explore.learner_config, ov) for what, ov in _network_variants(cfg)]
    if cfg.collect.episodes > 0:
        checks.append(('collect.learner_config', cfg.collect.learner_config, list(cfg.collect.learner_overrides)))
    for what, name, overrides in checks:
        net = load_learner_config(learner_config_path(name), overrides).learner.network
        if net.obs_mode != cfg.observation:
            raise ConfigError(f'observation: {cfg.observation!r} but {what} ({name}) trains '
                              f'obs_mode {net.obs_mode!r} networks')
        if cfg.observation == 'pixels' and net.privileged:
            raise ConfigError(f'observation: pixels but {what} ({name}) reads privileged sim keys '
                              f'{[k for k in net.input_keys if k not in REAL_KEYS]} (a real cell has none)')
    if cfg.observation == 'pixels' and not cfg.cells.images:
        raise ConfigError('observation: pixels needs cells.images: true (the cells render no camera)')
    from chef_loop.explore import needs_ope
    if cfg.observation == 'pixels' and needs_ope(cfg.explore.select_metric):
        raise ConfigError(f'explore.select_metric {cfg.explore.select_metric!r}: off-policy evaluation scores '
                          'state networks only; rank pixel trials by a summary metric (e.g. arm_mse, '
                          'select_mode: min)')


def learner_config_path(name: str) -> Path:
    p = Path(name)
    if p.is_file():
        return p
    cand = config_dir() / 'learners' / name
    if not cand.is_file():
        raise ConfigError(f'learner config {name!r} not found in {cand.parent}')
    return cand
