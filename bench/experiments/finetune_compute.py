"""Fine-tune vs from-scratch compute (issue 11; the CHEF paper: fine-tuning reaches the from-scratch
result with about half the compute), on the learning bench's dataset.

The loop's situation, ROS-free: a parent policy trained on the older half of the data (the first
`--old` episodes in recording order), then the data grows to all episodes. From the parent,
fine-tuning (weights initialised from it, fresh optimiser, as the loop's F stage) continues on all
episodes; from scratch, the same learner trains on all episodes. Both save checkpoints at the
given update counts, and every checkpoint (and the parent) is evaluated on the same seeded scenes
of the 5 test triplets (chef_loop.sim_eval, deterministic, through the safety filter). With
--train-seeds N each curve is trained N times and pooled. The learner is the loop's
(config/learners/iql_state.yaml; its train_on selection applies to both).

Writes bench/results/experiments/finetune_compute.json: per arm and update count the pooled
success with its Wilson interval, and `updates_to_reach`: the fewest updates at which each arm
reaches the from-scratch arm's final success (None if it never does), and their ratio.
Run: python bench/experiments/finetune_compute.py [--old 50] [--finetune-steps 1000 2500 5000]
     [--scratch-steps 2500 5000 10000] [--train-seeds 2] [--episodes-per-triplet 10]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'bench'))

import bench_learning as BL  # noqa: E402

OUT = ROOT / 'bench' / 'results' / 'experiments' / 'finetune_compute.json'
LEARNER = 'iql_state.yaml'


def train_curve(data_dir: str, out_dir: str, milestones: List[int], seed: int, first: Optional[int],
                init: Optional[str]) -> Dict[str, Any]:
    """Train the loop's learner, checkpointing at each milestone; {milestone: checkpoint path}."""
    import torch
    torch.set_num_threads(1)
    from chef_trainer.config import load_learner_config, resolve_config_path
    from chef_trainer.offline import LearningRun
    cfg = load_learner_config(resolve_config_path(LEARNER), [f'learner.batch_size={BL.BATCH}',
                                                             f'learner.seed={seed}'])
    sampler = BL.state_sampler(Path(data_dir), cfg.learner.n_step, cfg.learner.discount, learner=cfg.learner,
                               first=first)
    n_eps = len(sampler.episodes)
    run = LearningRun(cfg, out_dir, sampler, init_checkpoint=init, resume=False, keep=len(milestones) + 1,
                      device='cpu')
    out, t0 = {}, time.perf_counter()
    try:
        for m in sorted(milestones):
            while run.steps < m:
                run.update()
            out[m] = run.checkpoint()['path']
    finally:
        run.close()
    return {'checkpoints': out, 'episodes': n_eps, 'train_s': time.perf_counter() - t0}


def _eval_job(path: str, per_triplet: int):
    from chef_loop.sim_eval import PolicySpec
    return BL._evaluate('ckpt', PolicySpec('checkpoint', path=path), per_triplet)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--old', type=int, default=50, help='episodes the parent is trained on (the oldest)')
    ap.add_argument('--parent-steps', type=int, default=10_000)
    ap.add_argument('--finetune-steps', type=int, nargs='+', default=[1000, 2500, 5000])
    ap.add_argument('--scratch-steps', type=int, nargs='+', default=[2500, 5000, 10000])
    ap.add_argument('--train-seeds', type=int, default=2)
    ap.add_argument('--episodes-per-triplet', type=int, default=10)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--out', type=Path, default=OUT)
    args = ap.parse_args(argv)
    from chef_loop.stats import wilson
    from chef_loop.workers import process_map

    t_start = time.monotonic()
    run_dir = (ROOT / 'runs' / 'bench-learning').resolve()
    data_dir = BL.ensure_data(run_dir, print)
    work = ROOT / 'runs' / 'experiments' / 'finetune_compute'
    seeds = list(range(args.train_seeds))
    print(f'parents: {args.parent_steps} updates on the oldest {args.old} episodes, seeds {seeds}')
    parents = process_map(train_curve, [(str(data_dir), str(work / f'parent_s{s}'), [args.parent_steps], s,
                                        args.old, None) for s in seeds], workers=args.workers)
    jobs, arms = [], []
    for s, p in zip(seeds, parents):
        parent_ckpt = p['checkpoints'][args.parent_steps]
        jobs.append((str(data_dir), str(work / f'finetune_s{s}'), args.finetune_steps, s, None, parent_ckpt))
        arms.append(('finetune', s))
        jobs.append((str(data_dir), str(work / f'scratch_s{s}'), args.scratch_steps, s, None, None))
        arms.append(('scratch', s))
    print(f'fine-tune {args.finetune_steps} and scratch {args.scratch_steps} updates on all episodes')
    curves = process_map(train_curve, jobs, workers=args.workers)
    to_eval = [('parent', s, 0, p['checkpoints'][args.parent_steps]) for s, p in zip(seeds, parents)]
    for (arm, s), c in zip(arms, curves):
        to_eval += [(arm, s, m, path) for m, path in c['checkpoints'].items()]
    print(f'evaluating {len(to_eval)} checkpoints x {5 * args.episodes_per_triplet} episodes')
    evals = process_map(_eval_job, [(path, args.episodes_per_triplet) for *_, path in to_eval],
                        workers=args.workers)
    pooled: Dict[str, Dict[int, List[int]]] = {}
    for (arm, s, m, _), ev in zip(to_eval, evals):
        k, n = pooled.setdefault(arm, {}).setdefault(m, [0, 0])
        pooled[arm][m] = [k + int(ev['pooled']['successes']), n + int(ev['pooled']['trials'])]
    def row(k, n):
        ci = wilson(k, n)
        return {'success': k / n, 'ci95': [ci.low, ci.high], 'episodes': n, 'successes': k}
    table = {arm: {str(m): row(k, n) for m, (k, n) in sorted(by.items())} for arm, by in pooled.items()}
    final = pooled['scratch'][max(args.scratch_steps)]
    target = final[0] / final[1]

    def first_reaching(arm):
        for m, (k, n) in sorted(pooled[arm].items()):
            if k / n >= target:
                return m
        return None
    ft, sc = first_reaching('finetune'), first_reaching('scratch')
    result = {
        'experiment': 'finetune_compute', 'learner': LEARNER, 'data': str(data_dir.relative_to(ROOT)),
        'old_episodes': args.old, 'parent_updates': args.parent_steps,
        'train_episodes': {'parent': parents[0]['episodes'], 'all': curves[0]['episodes']},
        'train_seeds': args.train_seeds, 'episodes_per_triplet': args.episodes_per_triplet,
        'eval_seed': BL.EVAL_SEED, 'arms': table,
        'scratch_final_success': target,
        'updates_to_reach': {'finetune': ft, 'scratch': sc},
        'finetune_compute_fraction': (ft / sc) if ft and sc else None,
        'wall_s': time.monotonic() - t_start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + '\n')
    for arm, by in table.items():
        print(arm, {m: f"{v['successes']}/{v['episodes']}" for m, v in by.items()})
    print(f"updates to reach scratch's final {target:.0%}: fine-tune {ft}, scratch {sc}; wrote {args.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
