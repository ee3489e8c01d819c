"""H stage: offline-RL trials on Ray Tune, and the single-policy training used by fine-tuning.

Trials are sampled up front by the stage (seeded, stored in trials.json) and handed to Ray Tune as
a grid over trial indices, so a re-entered stage runs only the trials that have no result yet and a
half-trained trial resumes from its newest checkpoint: every trial checkpoints (networks,
optimisers, update count, RNG states; written atomically) every `checkpoint_every` updates into
its own directory, and a resumed trial drops the metrics.csv rows logged after that checkpoint, so
no step is logged twice. `ray_address` '' starts a local Ray sized to the trials (chef_loop.ray_session:
per-run temporary directory, nothing left behind after a kill); 'auto' or 'ray://host:10001' uses a
cluster (the data directory and the run directory must then be on a shared filesystem).

Offline selection score (`explore.select_metric`): by default `fqe_value`, fitted Q evaluation
(chef_trainer.ope) of each trial's staged head on episodes held out of its training, or
`heldout_score` (minus the staged head's arm error on the held-out episodes that succeeded, computed
in the same pass; OPE_METRICS lists every such score); the trial's
own critic (`policy_value`, Q_staged(s, mu_staged(s)) over data states) is kept in every summary
but misranked candidates in the large run (peers.md §4 pain 7). CHEF's Execute stage still
evaluates the top candidates on the cells and picks the best by measured success.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

RESULT_FILE = 'result.json'


def trial_overrides(params: Dict[str, Any]) -> List[str]:
    return [f'{k}={json.dumps(v)}' for k, v in sorted(params.items())]


def policy_value(run, sampler, samples: int = 1024, seed: int = 12345) -> Dict[str, float]:
    """Q_k(s, mu_k(s)) averaged over `samples` states of the data, for every intention k; {} for a
    learner without a critic (BC: its trials are scored by another metric, e.g. arm_mse)."""
    import numpy as np
    import torch

    from chef_trainer.learners import batch_to_torch
    learner = run.learner
    if not learner.uses_critic:
        return {}
    rng = np.random.default_rng(seed)
    b = batch_to_torch(sampler.sample(samples, rng), learner.keys, learner.device)
    out: Dict[str, float] = {}
    with torch.no_grad():
        mean, std, logits = learner.actor(b['obs'])
        from chef_policy.networks import sample_action
        for k, name in enumerate(run.cfg.intentions):
            a = sample_action(mean, std, logits, k, deterministic=True)
            q = learner.critic(b['obs'], a)[:, k]
            out[f'policy_value/{name}'] = float(q.mean())
            out[f'data_value/{name}'] = float(learner.critic(b['obs'], b['action'])[:, k].mean())
    out['policy_value'] = out.get('policy_value/staged', next(iter(out.values())))
    return out


def train_policy(base_config: str, overrides: Sequence[str], data_dir: str, episode_ids: Sequence[str],
                 steps: int, run_dir: Path, init_checkpoint: Optional[str] = None, progress: bool = True,
                 torch_threads: Optional[int] = None, checkpoint_every: int = 0
                 ) -> Tuple[str, str, Dict[str, Any]]:
    """Train one offline policy on the given episodes, checkpointing every `checkpoint_every`
    updates (0: at the end only); resumes from `run_dir`'s newest checkpoint.
    -> (ckpt, sha256, summary)"""
    import torch

    from chef_recorder.dataset import Dataset
    from chef_trainer.config import load_learner_config
    from chef_trainer.offline import LearningRun, make_sampler
    if torch_threads:
        torch.set_num_threads(torch_threads)
    cfg = load_learner_config(base_config, list(overrides))
    ds = Dataset(data_dir)
    wanted = set(episode_ids)
    records = [r for r in ds.training_records() if r.id in wanted]
    if len(records) != len(wanted):
        missing = sorted(wanted - {r.id for r in records})[:5]
        raise RuntimeError(f'{len(wanted) - len(records)} episode(s) of the training set are not in the '
                           f'catalog of {data_dir} (e.g. {missing})')
    sampler = make_sampler((ds, records), cfg.learner)
    run = LearningRun(cfg, run_dir, sampler, init_checkpoint=init_checkpoint, resume=True,
                      checkpoint_every=checkpoint_every)
    try:
        if run.steps < steps:            # a resumed run continues to `steps` in all
            summary = run.run(steps, progress=progress)      # ends with the final checkpoint
        else:   # re-entered after it had finished: its final checkpoint stands, never rewritten
            summary = run.finish(save=False)    # (a rewrite changes its sha256 under the episodes
            #                                     a killed stage already ran with it)
        summary.update(policy_value(run, sampler))
    finally:
        run.close()
    from chef_policy.checkpoint import file_sha256
    ckpt = summary['checkpoint']
    return ckpt, file_sha256(ckpt), summary


def _trial(config: Dict[str, Any]) -> None:
    """Ray Tune function trainable: one offline-RL configuration."""
    from ray import tune
    trial = config['trial']
    run_dir = Path(config['trial_root']) / f'trial_{trial["trial"]:03d}'
    t0 = time.time()
    steps = int(trial.get('steps', config['steps']))      # explore.steps_per_algorithm, else steps
    result: Dict[str, Any] = {'trial': trial['trial'], 'params': trial['params'], 'steps': steps,
                              'overrides': config['base_overrides'] + trial_overrides(trial['params'])}
    try:
        ckpt, sha, summary = train_policy(config['base_config'], result['overrides'], config['data_dir'],
                                          config['episode_ids'], steps, run_dir, progress=False,
                                          torch_threads=config['torch_threads'],
                                          checkpoint_every=config['checkpoint_every'])
        result.update(checkpoint=ckpt, sha256=sha, summary=summary, wall_s=time.time() - t0)
        metrics = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        metrics.update({f'final/{k}': v for k, v in (summary.get('final') or {}).items()
                        if isinstance(v, (int, float))})
    except Exception as exc:  # noqa: BLE001 - a failing trial is a result, not a crash of the sweep
        result.update(error=f'{type(exc).__name__}: {exc}', wall_s=time.time() - t0)
        metrics = {'failed': 1.0}
    (run_dir).mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (RESULT_FILE + '.tmp')
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    os.replace(tmp, run_dir / RESULT_FILE)
    metrics['trial'] = trial['trial']
    tune.report(metrics)


def load_result(trial_root: Path, trial: int) -> Optional[Dict[str, Any]]:
    p = Path(trial_root) / f'trial_{trial:03d}' / RESULT_FILE
    if p.is_file():
        r = json.loads(p.read_text())
        if not r.get('error'):
            return r
    return None


def run_trials(trials: Sequence[Dict[str, Any]], *, base_config: str, base_overrides: List[str],
               data_dir: str, episode_ids: Sequence[str], steps: int, trial_root: Path,
               ray_address: str = '', max_concurrent: int = 2, cpus_per_trial: float = 1.0,
               torch_threads: int = 1, log: Callable[[str], None] = print, progress: bool = True,
               checkpoint_every: int = 0, run_dir: Optional[Path] = None,
               cluster=None) -> List[Dict[str, Any]]:
    """Run the trials that have no result yet on Ray Tune; return every trial's result.

    `run_dir` (default: the directory above `trial_root`) owns the local Ray: its temporary
    directory and the processes a killed earlier run left behind (chef_loop.ray_session).
    `cluster` (a chef_loop.cluster.ClusterConfig, the loop's `ray_address` set): each trial also
    requests its GPUs and, unless the storage is shared, the driver's node."""
    trial_root = Path(trial_root).resolve()
    todo = [t for t in trials if load_result(trial_root, t['trial']) is None]
    if todo:
        from ray import tune

        from chef_loop.ray_session import ray_session
        log(f'  explore: {len(todo)} of {len(trials)} trial(s) to run on Ray Tune '
            f'({"local" if not ray_address else ray_address}, {max_concurrent} at once)')
        owner = Path(run_dir) if run_dir is not None else trial_root.parent
        with ray_session(owner, num_cpus=max(1, int(round(max_concurrent * cpus_per_trial))),
                         address=ray_address, log=log):
            for t in todo:      # (a killed run's trial workers are gone by now: ray_session)
                latest = trial_root / f'trial_{t["trial"]:03d}' / 'latest.json'
                if latest.is_file():
                    log(f'  trial {t["trial"]}: resumes from update {json.loads(latest.read_text())["step"]}')
            space = {'trial': tune.grid_search(list(todo)), 'trial_root': str(trial_root),
                     'base_config': str(Path(base_config).resolve()), 'base_overrides': list(base_overrides),
                     'data_dir': str(Path(data_dir).resolve()), 'episode_ids': list(episode_ids),
                     'steps': int(steps), 'torch_threads': int(torch_threads),
                     'checkpoint_every': int(checkpoint_every)}
            resources = {'cpu': cpus_per_trial}
            if cluster is not None:
                from chef_loop.cluster import training_resources
                resources.update({k.lower() if k == 'GPU' else k: v
                                  for k, v in training_resources(cluster).items()})
                log(f'  explore: each trial requests {resources}')
            tuner = tune.Tuner(
                tune.with_resources(_trial, resources), param_space=space,
                tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
                run_config=tune.RunConfig(name='explore', storage_path=str(trial_root.parent / 'ray'),
                                          verbose=0))
            grid = tuner.fit()
            for res in grid:
                if res.error:
                    log(f'  trial failed in Ray: {res.error}')
    results = []
    for t in trials:
        p = trial_root / f'trial_{t["trial"]:03d}' / RESULT_FILE
        r = (json.loads(p.read_text()) if p.is_file() else
             {'trial': t['trial'], 'params': t['params'], 'error': 'no result (trial did not run)'})
        results.append(r)
        pv = (r.get('summary') or {}).get('policy_value')
        shown = f'policy_value {pv:.3f}' if isinstance(pv, (int, float)) else 'no critic'
        log(f'  trial {t["trial"]}: {trial_overrides(t["params"])}, {r.get("steps", steps)} updates -> '
            + (f'error {r["error"]}' if r.get('error') else f'{shown}, {r.get("wall_s", 0):.0f} s'))
    return results


FQE_FILE = 'fqe.json'
# scores of chef_trainer.ope.evaluate_checkpoint (FQE and held-out action error), cached per trial
OPE_METRICS = ('fqe_value', 'fqe_initial_value', 'fqe_td_loss', 'heldout_score', 'heldout_arm_mse',
               'heldout_gripper_flip')


def needs_ope(metric: str) -> bool:
    """True when `explore.select_metric` is an off-policy evaluation score (computed after training
    on the held-out episodes), False for a metric of the trial's own summary.json."""
    return metric in OPE_METRICS


def _fqe_one(checkpoint: str, data_dir: str, episode_ids: Sequence[str], updates: int) -> Dict[str, Any]:
    import torch
    torch.set_num_threads(1)
    from chef_recorder.dataset import Dataset, TransitionSampler
    from chef_trainer.ope import FQEConfig, evaluate_checkpoint
    ds = Dataset(data_dir)
    wanted = set(episode_ids)
    records = [r for r in ds.training_records() if r.id in wanted]

    def sampler(keys):
        return TransitionSampler(ds, records, keys, n_step=5, discount=0.99, progress=False)
    return evaluate_checkpoint(checkpoint, sampler, FQEConfig(updates=updates))


def score_trials_fqe(results: List[Dict[str, Any]], data_dir: str, episode_ids: Sequence[str],
                     trial_root: Path, updates: int = 2000, workers: int = 1,
                     log: Callable[[str], None] = print) -> None:
    """Add `ope` (fitted Q evaluation on `episode_ids`) to every finished trial result; cached per
    trial in its directory (fqe.json), so a re-entered stage does not redo it."""
    from chef_loop.workers import process_map
    todo = []
    for r in results:
        if not r.get('checkpoint'):
            continue
        cache = Path(trial_root) / f'trial_{r["trial"]:03d}' / FQE_FILE
        if cache.is_file() and json.loads(cache.read_text()).get('checkpoint') == r['checkpoint']:
            r['ope'] = json.loads(cache.read_text())
        else:
            todo.append((r, cache))
    if not todo:
        return
    log(f'  explore: fitted Q evaluation of {len(todo)} trial(s) on {len(episode_ids)} held-out episode(s)')
    args = [(r['checkpoint'], data_dir, list(episode_ids), updates) for r, _ in todo]
    scores = process_map(_fqe_one, args, workers)
    for (r, cache), score in zip(todo, scores):
        score['checkpoint'] = r['checkpoint']
        r['ope'] = score
        tmp = cache.with_suffix('.tmp')
        tmp.write_text(json.dumps(score, indent=2))
        os.replace(tmp, cache)
        log(f'  trial {r["trial"]}: fqe_value {score["fqe_value"]:.3f}, held-out arm mse '
            f'{score["heldout_arm_mse"]:.4f} ({score["fqe_s"]:.0f} s)')
