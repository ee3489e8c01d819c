"""Learning quality: the project's offline learners vs independent baselines on ONE recorded dataset.

1. Data: `chef collect --config bench_learning` (the noisy scripted expert on the 5 test triplets,
   recorded through the real ROS graph into runs/bench-learning/data; reproducible from the
   config's seed; reused when already there).
2. Learners, each trained for the same number of updates with batch 256 on that data (the project's
   state learners on its successful episodes, `learner.train_on`; the baselines on every episode, but
   bc_mlp_succ), privileged state inputs (18 stacked keys), one torch thread each, two at a time:
   * chef_iql        - the CHEF loop's learner (config/learners/iql_state.yaml): 6 SAC-X intention
                       heads on shared critics (two, clipped double Q) and a shared expectile value,
                       1-step targets, the 'staged' head acts
   * chef_iql_single - the same with only the 'staged' intention (multi-task vs single-task)
   * chef_crr        - the previous loop learner (config/learners/crr_state.yaml), multi-task; on
                       request (--learners), not in the default set
   * chef_bc         - the project's BC (config/learners/bc_state.yaml, actor lr 1e-3 as chef_iql)
   * bc_mlp          - independent baseline: a plain PyTorch MLP (256x256 ReLU), squared error on
                       the 5-D action, inputs standardised, Adam 3e-4 (`baseline_bc`)
   * bc_mlp_succ     - the same MLP on the successful episodes only (filtered BC, the project
                       learners' episode selection without their critic)
   * bc_mlp_lr1e3    - the same MLP at the project learners' actor learning rate (1e-3): shows how
                       much of a gain over bc_mlp is the learning rate rather than the critic
   * d3rlpy_crr, d3rlpy_iql - d3rlpy 2.8.1 (requirements-bench.txt), 256x256 encoders, standardised
                       observations, the staged reward
3. Evaluation: every policy, deterministic, on the same seeded scenes of the 5 test triplets in the
   ROS-free MuJoCo cell through the safety filter (chef_loop.sim_eval); the data's own policy (the
   scripted expert with the data's noise) on the same scenes gives `data_success`.

Writes bench/results/learning.json: learners {name: {pooled_success, ci95, episodes, updates_per_s,
per_triplet}}, chosen, baseline_bc, data_success, ratio_to_bc, d3rlpy_best. With --train-seeds N > 1
every learner is trained N times (seeds 0..N-1), each policy evaluated on the same scenes; pooled
success counts all their episodes, and per_seed / seed_std give the training spread that one
training cannot show (one recipe moved by up to 20 points between two runs of this bench).
Run: python bench/bench_learning.py [--quick] [--updates N] [--episodes-per-triplet N] [--train-seeds N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

warnings.filterwarnings('ignore')
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'bench' / 'results'
DATA_CONFIG = 'bench_learning'
EVAL_SEED = 900_000                 # evaluation scenes: seed + 1000 * triplet + episode
BATCH = 256
CHOSEN = 'chef_iql'
BASELINE_BC = 'bc_mlp'

SINGLE = ['learner.intentions=[staged]', 'learner.network.n_intentions=1']
CHEF_LEARNERS = {   # name: (config/learners file, overrides)
    'chef_iql': ('iql_state.yaml', []),
    'chef_iql_single': ('iql_state.yaml', SINGLE),
    'chef_crr': ('crr_state.yaml', []),
    'chef_crr_single': ('crr_state.yaml', SINGLE),
    'chef_crr_nll': ('crr_state.yaml', ['learner.actor_loss=nll', 'learner.crr.normalize_advantage=false']),
    'chef_bc': ('bc_state.yaml', []),
    # variants measured on validation scenes while choosing (bench/results/experiments/README.md)
    'chef_iql_nll': ('iql_state.yaml', ['learner.actor_loss=nll']),
    'chef_iql_b3': ('iql_state.yaml', ['learner.iql.beta=3.0']),
    'chef_iql_b0': ('iql_state.yaml', ['learner.iql.beta=0.0']),
    'chef_iql_n5': ('iql_state.yaml', ['learner.n_step=5']),
    'chef_iql_one_critic': ('iql_state.yaml', ['learner.iql.critics=1']),
    'chef_iql_lr3e4': ('iql_state.yaml', ['learner.optim.actor_lr=3e-4']),
    'chef_bc_lr3e4': ('bc_state.yaml', ['learner.optim.actor_lr=3e-4']),
    'chef_crr_bc': ('crr_state.yaml', ['learner.crr.bc_weight=1.0']),
    'chef_crr_b3': ('crr_state.yaml', ['learner.crr.beta=3.0']),
    'chef_crr_bin': ('crr_state.yaml', ['learner.crr.weight_mode=binary']),
    # the previous command as an input (the configs' setting before 2026-12-06: '*_noprev' in
    # experiments/learning_prev_action_valseeds.json is what the configs are now)
    'chef_bc_prev': ('bc_state.yaml', ['learner.network.use_prev_action=true']),
    'chef_iql_prev': ('iql_state.yaml', ['learner.network.use_prev_action=true']),
    # only the previous gripper command (bench/diagnose_policy.py: the gripper flickers open mid-lift)
    'chef_bc_prevgrip': ('bc_state.yaml', ['learner.network.use_prev_action=true',
                                           'learner.network.prev_gripper_only=true']),
    'chef_iql_prevgrip': ('iql_state.yaml', ['learner.network.use_prev_action=true',
                                             'learner.network.prev_gripper_only=true']),
    # every episode, successful or not (the configs' train_on before 2026-12-06: '*_succ' in
    # experiments/learning_success_filter*_valseeds.json is what the configs are now)
    'chef_bc_all': ('bc_state.yaml', ['learner.train_on=all']),
    'chef_iql_all': ('iql_state.yaml', ['learner.train_on=all']),
    # the actor's standardised state inputs with Gaussian noise while training (a small-data regulariser)
    'chef_iql_sn01': ('iql_state.yaml', ['learner.state_noise_std=0.1']),
    'chef_iql_sn03': ('iql_state.yaml', ['learner.state_noise_std=0.3']),
    'chef_bc_sn01': ('bc_state.yaml', ['learner.state_noise_std=0.1']),
    # the encoder's LayerNorm + tanh (the configs' setting before 2026-12-07: experiments/
    # learning_encoder_norm_valseeds.json)
    'chef_iql_ln': ('iql_state.yaml', ['learner.network.layer_norm=true']),
    'chef_bc_ln': ('bc_state.yaml', ['learner.network.layer_norm=true']),
    # every setting in which d3rlpy's IQL differs from the loop's at once (all episodes, previous
    # command, beta 3 = d3rlpy's weight_temp, Gaussian likelihood, actor lr 3e-4): what is left of a
    # gap to d3rlpy_iql after it is in the implementation, not the settings
    'chef_iql_d3like': ('iql_state.yaml', ['learner.train_on=all', 'learner.network.use_prev_action=true',
                                           'learner.iql.beta=3.0', 'learner.actor_loss=nll',
                                           'learner.optim.actor_lr=3e-4']),
    # action chunking (the actor predicts the next H commands, acting averages the chunks covering a
    # tick: chef_policy.chunking; experiments/README.md "Action chunking")
    'chef_iql_h8': ('iql_state.yaml', ['learner.network.action_horizon=8']),
    'chef_iql_h16': ('iql_state.yaml', ['learner.network.action_horizon=16']),
    'chef_bc_h8': ('bc_state.yaml', ['learner.network.action_horizon=8']),
    'chef_bc_h16': ('bc_state.yaml', ['learner.network.action_horizon=16']),
    # orientations as rotation matrices instead of the observed quaternions, which flip sign
    # (NetworkConfig.rotations; experiments/README.md "Rotation inputs")
    'chef_iql_rotmat': ('iql_state.yaml', ['learner.network.rotations=matrix']),
    'chef_bc_rotmat': ('bc_state.yaml', ['learner.network.rotations=matrix']),
    # rotation matrices plus each object's axes seen from the gripper (networks.gripper_axis_features:
    # the grasp's yaw alignment, continuous under the parallel gripper's half turn)
    'chef_iql_relrot': ('iql_state.yaml', ['learner.network.rotations=relative']),
    'chef_bc_relrot': ('bc_state.yaml', ['learner.network.rotations=relative']),
}
# chef_crr (the loop's learner before IQL, 8 % in the 2026-12-06 run) runs on request (--learners)
DEFAULT_CHEF = ('chef_iql', 'chef_iql_single', 'chef_bc')
# '_noprev': the same baseline without the previous command as an input, as the project's state
# configs read (so a gain that is only the input set shows as such)
# '_succ': the same baseline on the successful episodes only (the project's state learners' train_on), so a
# gain that is only the episode filter shows as such; `baseline_bc` stays plain BC on every episode
BASELINES = ('bc_mlp', 'bc_mlp_lr1e3', 'bc_mlp_noprev', 'bc_mlp_succ', 'd3rlpy_crr', 'd3rlpy_iql',
             'd3rlpy_iql_noprev')
QUICK_LEARNERS = ('chef_iql', 'chef_bc', 'bc_mlp', 'd3rlpy_iql')


# --- data -------------------------------------------------------------------------------------------
def ensure_data(run_dir: Path, log) -> Path:
    """Run (or resume) `chef collect` for the bench's dataset; returns the data directory."""
    t0 = time.monotonic()
    state = run_dir / 'state.json'
    if state.is_file():
        done = json.loads(state.read_text()).get('iterations', {}).get('0', {}).get('collect', {})
        if done.get('status') == 'done':
            log(f'data: collected earlier ({run_dir / "data"})')
            return run_dir / 'data'
    cmd = [sys.executable, '-m', 'chef_bringup.cli', 'collect', '--config', DATA_CONFIG, '--no-progress']
    if run_dir.parent != (ROOT / 'runs').resolve():
        cmd += ['--set', f'runs_dir={run_dir.parent}']
    log(f'data: {" ".join(cmd[2:])}')
    subprocess.run(cmd, check=True, cwd=ROOT)
    log(f'data: ready in {time.monotonic() - t0:.0f} s')
    return run_dir / 'data'


def data_records(data_dir: Path):
    from chef_recorder.dataset import Dataset
    ds = Dataset(data_dir)
    return ds, ds.training_records()


def state_sampler(data_dir: Path, n_step: int = 5, discount: float = 0.99, keys=None, learner=None,
                  successful_only: bool = False, first: Optional[int] = None):
    """Transitions of the dataset's episodes (`first`: only the first N in recording order)."""
    from chef_contract.spec import STATE_OBSERVATION_NAMES
    from chef_recorder.dataset import TransitionSampler
    ds, records = data_records(data_dir)
    if first is not None:
        records = sorted(records, key=lambda r: (r.metadata.get('start_stamp_ns') or 0, r.episode_id))[:first]
    if learner is not None:                        # the project learner's own episode selection
        from chef_trainer.offline import select_episodes
        records = select_episodes(records, learner)
    if successful_only:                            # the same selection as train_on: successful
        from chef_trainer.config import LearnerConfig
        from chef_trainer.offline import select_episodes
        records = select_episodes(records, LearnerConfig(train_on='successful'))
    return TransitionSampler(ds, records, tuple(keys or STATE_OBSERVATION_NAMES), n_step=n_step,
                             discount=discount, progress=False)


def baseline_keys(name: str):
    """The recorded state keys a baseline reads: all of them, or (`*_noprev`) all but the previous
    command, the input set of the project's state configs."""
    from chef_contract.spec import STATE_OBSERVATION_NAMES
    if name.endswith('_noprev'):
        return tuple(k for k in STATE_OBSERVATION_NAMES if k != 'action/environment')
    return STATE_OBSERVATION_NAMES


def flat_episodes(sampler):
    """Per episode: (X [T+1, D] flattened stacked state, actions [T, 5], staged reward [T], valid [T])."""
    from chef_contract.spec import REWARD_TERMS
    col = REWARD_TERMS.index('staged')
    out = []
    for i, ep in enumerate(sampler.episodes):
        states = sampler.episode_states(i)
        x = np.concatenate([states[k].reshape(states[k].shape[0], -1) for k in sampler.state_keys], 1)
        out.append((x.astype(np.float32), np.asarray(ep.actions, np.float32),
                    np.asarray(ep.reward_terms, np.float32)[:, col], np.asarray(ep.valid, bool)))
    return out


# --- trainers (each runs in its own process) ----------------------------------------------------------
def train_chef(name: str, data_dir: str, out_dir: str, updates: int, seed: int = 0) -> Dict[str, Any]:
    from chef_loop.sim_eval import PolicySpec
    from chef_trainer.config import load_learner_config, resolve_config_path
    from chef_trainer.offline import train_offline
    base, overrides = CHEF_LEARNERS[name]
    cfg = load_learner_config(resolve_config_path(base), overrides + [f'learner.batch_size={BATCH}',
                                                                      f'learner.seed={seed}'])
    sampler = state_sampler(Path(data_dir), cfg.learner.n_step, cfg.learner.discount, learner=cfg.learner)
    t0 = time.perf_counter()
    ckpt, summary = train_offline(cfg, sampler, updates, Path(out_dir) / _seeded(name, seed), progress=False,
                                  resume=False,
                                  device='cpu')
    wall = time.perf_counter() - t0
    return {'spec': PolicySpec('checkpoint', path=ckpt), 'updates': updates, 'train_s': wall,
            'updates_per_s': updates / wall}


def train_bc_mlp(data_dir: str, out_dir: str, updates: int, seed: int = 0, lr: float = 3e-4,
                 name: str = 'bc_mlp') -> Dict[str, Any]:
    """Plain PyTorch behaviour cloning: standardised inputs, 256x256 ReLU MLP, MSE on the action."""
    import torch
    from torch import nn
    from chef_loop.sim_eval import PolicySpec
    torch.manual_seed(seed)
    keys = baseline_keys(name)
    eps = flat_episodes(state_sampler(Path(data_dir), keys=keys, successful_only=name.endswith('_succ')))
    x = np.concatenate([e[0][:-1][e[3]] for e in eps])
    y = np.concatenate([e[1][e[3]] for e in eps])
    mean, std = x.mean(0), x.std(0).clip(1e-2)
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y).float()

    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer('mean', torch.from_numpy(mean).float())
            self.register_buffer('std', torch.from_numpy(std).float())
            self.net = nn.Sequential(nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                     nn.Linear(256, 5))

        def forward(self, obs):
            return self.net((obs - self.mean) / self.std)

    model = Policy()
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(updates):
        idx = torch.from_numpy(rng.integers(0, len(xt), BATCH))
        loss = (model.net(xt[idx]) - yt[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall = time.perf_counter() - t0
    path = Path(out_dir) / f'{_seeded(name, seed)}.pt'
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(model.eval(), xt[:1]).save(str(path))
    return {'spec': PolicySpec('torchscript', path=str(path), keys=keys), 'updates': updates, 'train_s': wall,
            'updates_per_s': updates / wall}


def train_d3rlpy(algo_name: str, data_dir: str, out_dir: str, updates: int, seed: int = 0) -> Dict[str, Any]:
    import logging

    import d3rlpy
    import structlog
    from chef_loop.sim_eval import PolicySpec
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    d3rlpy.seed(seed)
    keys = baseline_keys(algo_name)
    eps = flat_episodes(state_sampler(Path(data_dir), keys=keys))
    obs, act, rew, term, tout = [], [], [], [], []
    for x, a, r, valid in eps:
        # d3rlpy cannot skip a transition: a lost tick (invalid, reward NaN) ends a segment
        for seg in np.split(np.arange(len(a)), np.flatnonzero(~valid)):
            seg = seg[valid[seg]]
            if seg.size < 2:
                continue
            obs.append(x[seg])
            act.append(a[seg])
            rew.append(r[seg])
            term.append(np.zeros(seg.size, np.float32))
            to = np.zeros(seg.size, np.float32)
            to[-1] = 1.0
            tout.append(to)
    dataset = d3rlpy.dataset.MDPDataset(np.concatenate(obs), np.concatenate(act),
                                        np.concatenate(rew)[:, None], np.concatenate(term),
                                        timeouts=np.concatenate(tout))
    enc = d3rlpy.models.encoders.VectorEncoderFactory([256, 256])
    common = dict(batch_size=BATCH, actor_encoder_factory=enc, critic_encoder_factory=enc,
                  observation_scaler=d3rlpy.preprocessing.StandardObservationScaler())
    if algo_name.startswith('crr'):
        algo = d3rlpy.algos.CRRConfig(**common).create(device='cpu:0')
    else:
        algo = d3rlpy.algos.IQLConfig(value_encoder_factory=enc, **common).create(device='cpu:0')
    t0 = time.perf_counter()
    algo.fit(dataset, n_steps=updates, n_steps_per_epoch=updates, show_progress=False, save_interval=10 ** 9,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    wall = time.perf_counter() - t0
    path = Path(out_dir) / f'{_seeded("d3rlpy_" + algo_name, seed)}.pt'
    path.parent.mkdir(parents=True, exist_ok=True)
    algo.save_policy(str(path))
    return {'spec': PolicySpec('torchscript', path=str(path), keys=keys), 'updates': updates, 'train_s': wall,
            'updates_per_s': updates / wall}


def _seeded(name: str, seed: int) -> str:
    """File name of one training seed's policy (seed 0 keeps the learner's own name)."""
    return name if seed == 0 else f'{name}_seed{seed}'


def _train(name: str, data_dir: str, out_dir: str, updates: int, seed: int = 0) -> Dict[str, Any]:
    import torch
    torch.set_num_threads(1)
    try:
        if name in CHEF_LEARNERS:
            return train_chef(name, data_dir, out_dir, updates, seed=seed)
        if name in ('bc_mlp', 'bc_mlp_noprev', 'bc_mlp_succ'):
            return train_bc_mlp(data_dir, out_dir, updates, seed=seed, name=name)
        if name == 'bc_mlp_lr1e3':
            return train_bc_mlp(data_dir, out_dir, updates, seed=seed, lr=1e-3, name=name)
        return train_d3rlpy(name.split('_', 1)[1], data_dir, out_dir, updates, seed=seed)
    except Exception as exc:  # noqa: BLE001 - a failing learner is a result
        return {'error': f'{type(exc).__name__}: {exc}'}


def _evaluate(name: str, spec, episodes_per_triplet: int, seed: int = EVAL_SEED) -> Dict[str, Any]:
    import torch
    torch.set_num_threads(1)
    from chef_loop.sim_eval import evaluate
    t0 = time.perf_counter()
    res = evaluate(spec, episodes_per_triplet=episodes_per_triplet, seed=seed)
    out = res.to_dict()
    out['eval_s'] = time.perf_counter() - t0
    return out


# --- main ---------------------------------------------------------------------------------------------
def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='4 learners, 2000 updates, 2 episodes per triplet')
    ap.add_argument('--updates', type=int, default=None, help='updates per learner (default 10000)')
    ap.add_argument('--episodes-per-triplet', type=int, default=None, help='evaluation episodes (default 10)')
    ap.add_argument('--learners', nargs='*', default=None, help='subset of learners to run')
    ap.add_argument('--eval-seed', type=int, default=EVAL_SEED,
                    help='first evaluation seed (another value gives validation scenes for choosing variants)')
    ap.add_argument('--workers', type=int, default=2, help='learners trained / evaluated at once')
    ap.add_argument('--train-seeds', type=int, default=1,
                    help='trainings per learner (seeds 0..N-1), each evaluated on the same scenes; pooled '
                         'success counts every seed\'s episodes (default 1: ~25 min; N multiplies it)')
    ap.add_argument('--ensemble', action='store_true',
                    help='with --train-seeds N >= 2: also evaluate each learner\'s N trainings acting as one '
                         '(chef_policy.ensemble.EnsemblePolicy: mean arm command, majority gripper) as '
                         '<name>_ens<N>, on the same scenes (N x the training compute)')
    ap.add_argument('--run-dir', default=str(ROOT / 'runs' / 'bench-learning'))
    ap.add_argument('--out', default=str(RESULTS / 'learning.json'))
    args = ap.parse_args(argv)
    updates = args.updates or (2000 if args.quick else 10000)
    per_triplet = args.episodes_per_triplet or (2 if args.quick else 10)
    names = args.learners or list(QUICK_LEARNERS if args.quick else DEFAULT_CHEF + BASELINES)
    t_start = time.monotonic()
    log = lambda m: print(f'[bench learning {time.monotonic() - t_start:6.0f} s] {m}', flush=True)  # noqa: E731

    run_dir = Path(args.run_dir).resolve()
    data_dir = ensure_data(run_dir, log)
    ds, records = data_records(data_dir)
    recorded = [bool(r.metadata.get('success')) for r in records if r.metadata.get('status') == 'end']
    log(f'data: {len(records)} episodes, recorded success {sum(recorded)}/{len(recorded)}')
    out_dir = run_dir / 'learners'

    if args.train_seeds < 1:
        ap.error('--train-seeds: at least 1')
    seeds = list(range(args.train_seeds))
    runs = [(n, sd) for n in names for sd in seeds]
    from chef_loop.workers import process_map
    trained = dict(zip(runs, process_map(_train, [(n, str(data_dir), str(out_dir), updates, sd)
                                                  for n, sd in runs], args.workers)))
    for (n, sd), r in trained.items():
        log(f'trained {_seeded(n, sd)}: '
            + (r['error'] if 'error' in r else f'{r["updates_per_s"]:.1f} upd/s, {r["train_s"]:.0f} s'))

    from chef_loop.sim_eval import PolicySpec
    noise = _data_noise()
    jobs = [('data', PolicySpec('scripted', noise=noise))] + \
           [(run, r['spec']) for run, r in trained.items() if 'spec' in r]
    ensembles = {}
    if args.ensemble and len(seeds) > 1:
        for n in names:
            if all('spec' in trained[(n, sd)] for sd in seeds):
                ensembles[f'{n}_ens{len(seeds)}'] = n
                jobs.append(((f'{n}_ens{len(seeds)}', 0), PolicySpec(
                    'ensemble', members=tuple(trained[(n, sd)]['spec'] for sd in seeds))))
    evals = dict(zip([j[0] for j in jobs], process_map(_evaluate, [(n, s, per_triplet, args.eval_seed)
                                                                   for n, s in jobs], args.workers)))

    learners: Dict[str, Any] = {n: learner_result([(trained[(n, sd)], evals.get((n, sd))) for sd in seeds])
                                for n in names}
    for ens, n in ensembles.items():        # one policy made of the N trainings: N x the updates
        member = dict(trained[(n, 0)], updates=updates * len(seeds),
                      train_s=sum(trained[(n, sd)]['train_s'] for sd in seeds))
        learners[ens] = dict(learner_result([(member, evals[(ens, 0)])]), ensemble_of=[_seeded(n, sd) for sd in seeds])
    data_ev = evals['data']
    bc = learners.get(BASELINE_BC, {}).get('pooled_success')
    chosen = learners.get(CHOSEN, {}).get('pooled_success')
    d3 = [learners[n]['pooled_success'] for n in learners if n.startswith('d3rlpy') and 'pooled_success' in learners[n]]
    result = {
        'bench': 'learning', 'quick': args.quick, 'updates': updates, 'batch': BATCH,
        'episodes_per_triplet': per_triplet, 'eval_seed': args.eval_seed,
        'data': {'config': DATA_CONFIG, 'dir': str(data_dir.relative_to(ROOT)) if data_dir.is_relative_to(ROOT)
                 else str(data_dir), 'episodes': len(records),
                 'recorded_success': sum(recorded) / max(1, len(recorded)), 'scripted_noise': noise},
        'data_success': data_ev['pooled']['rate'],
        'data_ci95': [data_ev['pooled']['low'], data_ev['pooled']['high']],
        'data_per_triplet': {k: v['rate'] for k, v in data_ev['per_triplet'].items()},
        'learners': learners, 'chosen': CHOSEN, 'baseline_bc': BASELINE_BC,
        'ratio_to_bc': (chosen / bc) if chosen is not None and bc else None,
        'd3rlpy_best': max(d3) if d3 else None,
        'train_seeds': args.train_seeds,
        'torch_threads_per_process': 1, 'processes': args.workers, 'wall_s': time.monotonic() - t_start,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
    print(f'\n{"policy":<18} {"pooled success [95 % CI]":<28} {"upd/s":>7}  per triplet')
    print(f'{"data (scripted)":<18} {_pct(result["data_success"], result["data_ci95"]):<28} {"":>7}  '
          + ' '.join(f'{100 * v:3.0f}' for v in result['data_per_triplet'].values()))
    for n, r in learners.items():
        if 'error' in r:
            print(f'{n:<18} error: {r["error"]}')
            continue
        print(f'{n:<18} {_pct(r["pooled_success"], r["ci95"]):<28} {r["updates_per_s"]:7.1f}  '
              + ' '.join(f'{100 * v:3.0f}' for v in r['per_triplet'].values())
              + (f'   seeds {" / ".join(f"{100 * v:.0f}" for v in r["per_seed"])}' if 'per_seed' in r else ''))
    if result['ratio_to_bc'] is not None:
        print(f'ratio {CHOSEN} / {BASELINE_BC}: {result["ratio_to_bc"]:.2f}x; data success '
              f'{100 * result["data_success"]:.0f} %; d3rlpy best {result["d3rlpy_best"]}')
    print(f'wrote {args.out} ({result["wall_s"] / 60:.1f} min)')
    return 0


def learner_result(runs: List[Tuple[Dict[str, Any], Optional[Dict[str, Any]]]]) -> Dict[str, Any]:
    """One learner's entry from its (training, evaluation) per seed: success pooled over every
    seed's episodes (Wilson 95 %), per-seed rates and their spread (training variance, which the
    pooled interval does not contain), mean speed."""
    from chef_loop.stats import wilson
    errors = [t['error'] for t, _ in runs if 'error' in t]
    if errors:
        return {'error': errors[0]}
    succ = sum(ev['pooled']['successes'] for _, ev in runs)
    trials = sum(ev['pooled']['trials'] for _, ev in runs)
    pooled = wilson(succ, trials)
    triplets = list(runs[0][1]['per_triplet'])
    out = {'pooled_success': pooled.value, 'ci95': [pooled.low, pooled.high], 'episodes': trials,
           'updates': runs[0][0]['updates'],
           'updates_per_s': float(np.mean([t['updates_per_s'] for t, _ in runs])),
           'train_s': float(sum(t['train_s'] for t, _ in runs)),
           'eval_s': float(sum(ev['eval_s'] for _, ev in runs)),
           'mean_staged_return': float(np.mean([ev['mean_staged_return'] for _, ev in runs])),
           'per_triplet': {k: sum(ev['per_triplet'][k]['successes'] for _, ev in runs)
                           / max(1, sum(ev['per_triplet'][k]['trials'] for _, ev in runs)) for k in triplets}}
    if len(runs) > 1:
        rates = [ev['pooled']['rate'] for _, ev in runs]
        out.update(seeds=len(runs), per_seed=rates, seed_std=float(np.std(rates, ddof=1)))
    return out


def _data_noise() -> float:
    from chef_loop.config import load_loop_config
    return float(load_loop_config(DATA_CONFIG).collect.scripted_noise)


def _pct(v, ci) -> str:
    return f'{100 * v:5.1f} % [{100 * ci[0]:4.1f}, {100 * ci[1]:4.1f}]'


if __name__ == '__main__':
    sys.exit(main())
