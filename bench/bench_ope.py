"""Candidate ranking: does the offline score predict executed success? Spearman over >= 8 candidates.

On the learning bench's dataset (runs/bench-learning/data, `chef collect --config bench_learning`),
episodes are split by the explore stage's stable hash (chef_loop.stages.holdout_split, 20 % held
out). Candidates are the policies an Explore stage produces: the loop's IQL at two temperatures,
project BC and project CRR (the previous loop learner), each trained on the training episodes and
taken at several update counts (checkpoints of one run), so their quality spans from untrained to
the best. Each candidate gets
  * fqe_value      - fitted Q evaluation on the held-out episodes (chef_trainer.ope; the loop's
                     default `explore.select_metric`), fqe_initial_value on their first states;
  * heldout_score  - minus the staged head's arm squared error against the commands of the held-out
                     episodes that succeeded (chef_trainer.ope.heldout_action_error, same pass);
  * policy_value   - its own critic's Q_staged(s, mu(s)) on data states (BC has no critic);
  * success        - executed success on the 5 test triplets in the ROS-free cell (sim_eval).
Writes bench/results/ope.json: candidates, score (the loop's select metric unless --score),
spearman (that score vs success), by_score {score: spearman, candidates, top, top_success}, and per
candidate its scores and success.
Chunking candidates (network.action_horizon > 1) are scored on the commands they issue, the
temporal ensemble of their chunks along each held-out trajectory (chef_trainer.ope.trajectory_actions).
`--rescore ope.json` keeps that run's candidates (and their executed success, unless
--episodes-per-triplet asks for another count) and recomputes the offline scores.
Run: python bench/bench_ope.py [--quick] [--rescore bench/results/ope.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional


sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_learning as BL  # noqa: E402
from chef_loop.explore import OPE_METRICS  # noqa: E402

ROOT = BL.ROOT
HOLDOUT = 0.2
RUNS = {   # name: (learner config, overrides, checkpoint steps)
    'iql_b1': ('iql_state.yaml', [], (1000, 5000, 15000, 30000)),
    'iql_b3': ('iql_state.yaml', ['learner.iql.beta=3.0'], (5000, 15000)),
    'bc': ('bc_state.yaml', [], (1000, 5000, 15000)),
    'crr_b1': ('crr_state.yaml', [], (6000,)),
}
SCORES = ('fqe_value', 'fqe_initial_value', 'heldout_score', 'policy_value')


def split(data_dir: Path):
    from chef_loop.stages import holdout_split
    ds, records = BL.data_records(data_dir)
    train, held = holdout_split([r.id for r in records], HOLDOUT)
    return train, held


def _train_run(name: str, data_dir: str, out_dir: str, train_ids: List[str], scale: float) -> Dict[str, Any]:
    import torch
    torch.set_num_threads(1)
    from chef_recorder.dataset import Dataset
    from chef_trainer.config import load_learner_config, resolve_config_path
    from chef_trainer.offline import LearningRun, make_sampler
    base, overrides, steps = RUNS[name]
    steps = sorted({max(1, int(s * scale)) for s in steps})
    cfg = load_learner_config(resolve_config_path(base), overrides + [f'learner.batch_size={BL.BATCH}'])
    ds = Dataset(data_dir)
    wanted = set(train_ids)
    records = [r for r in ds.training_records() if r.id in wanted]
    sampler = make_sampler((ds, records), cfg.learner)      # the learner's keys, n-step and train_on
    run = LearningRun(cfg, Path(out_dir) / name, sampler, resume=False, keep=100, device='cpu')
    out = {}
    t0 = time.perf_counter()
    try:
        for s in steps:
            while run.steps < s:
                run.update()
            info = run.checkpoint()
            pv = None
            if run.learner.uses_critic:
                from chef_loop.explore import policy_value
                pv = policy_value(run, sampler)['policy_value']
            out[f'{name}@{s}'] = {'checkpoint': info['path'], 'updates': s, 'policy_value': pv}
    finally:
        run.close()
    return {'candidates': out, 'updates_per_s': steps[-1] / (time.perf_counter() - t0)}


def _fqe(checkpoint: str, data_dir: str, held: List[str], updates: int) -> Dict[str, Any]:
    from chef_loop.explore import _fqe_one
    return _fqe_one(checkpoint, data_dir, held, updates)


def _loop_select_metric() -> str:
    from chef_loop.config import ExploreConfig
    return ExploreConfig().select_metric


def spearman(x, y) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(x, y).statistic)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='a quarter of the updates, 2 episodes per triplet')
    ap.add_argument('--episodes-per-triplet', type=int, default=None, help='evaluation episodes (default 6)')
    ap.add_argument('--fqe-updates', type=int, default=None, help='FQE updates per candidate (default 2000)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--score', default=_loop_select_metric(), choices=SCORES,
                    help="the score whose Spearman is `spearman` (default: the loop's explore.select_metric)")
    ap.add_argument('--rescore', default='', metavar='OPE_JSON',
                    help="reuse that result's candidates (checkpoints under --run-dir) and their executed "
                         'success (unless --episodes-per-triplet differs); recompute the offline scores')
    ap.add_argument('--run-dir', default=str(ROOT / 'runs' / 'bench-learning'))
    ap.add_argument('--out', default=str(BL.RESULTS / 'ope.json'))
    args = ap.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    per_triplet = args.episodes_per_triplet or (2 if args.quick else 6)
    fqe_updates = args.fqe_updates or (500 if args.quick else 2000)
    t_start = time.monotonic()
    log = lambda m: print(f'[bench ope {time.monotonic() - t_start:6.0f} s] {m}', flush=True)  # noqa: E731
    run_dir = Path(args.run_dir).resolve()
    data_dir = BL.ensure_data(run_dir, log)
    train, held = split(data_dir)
    log(f'data: {len(train)} training episodes, {len(held)} held out')
    out_dir = run_dir / 'ope'
    from chef_loop.workers import process_map
    cands: Dict[str, Dict[str, Any]] = {}
    if args.rescore:
        before = json.loads(Path(args.rescore).read_text())
        if (before['train_episodes'], before['holdout_episodes']) != (len(train), len(held)):
            raise SystemExit(f'{args.rescore}: another split of the data ({before["train_episodes"]} / '
                             f'{before["holdout_episodes"]} episodes, now {len(train)} / {len(held)})')
        keep = ('checkpoint', 'updates', 'policy_value')
        if args.episodes_per_triplet in (None, before['episodes_per_triplet']):   # same execution: kept
            keep += ('success', 'ci95', 'episodes', 'mean_staged_return')
            per_triplet = before['episodes_per_triplet']
        cands = {n: {k: c[k] for k in keep} for n, c in before['per_candidate'].items()}
        log(f'rescoring the {len(cands)} candidates of {args.rescore}'
            + ('' if 'success' in keep else f', executing each {5 * per_triplet} times'))
    else:
        runs = process_map(_train_run, [(n, str(data_dir), str(out_dir), train, scale) for n in RUNS],
                           args.workers)
        for r in runs:
            cands.update(r['candidates'])
        log(f'trained {len(cands)} candidates')
    names = list(cands)
    fqe = process_map(_fqe, [(cands[n]['checkpoint'], str(data_dir), held, fqe_updates) for n in names], args.workers)
    for n, f in zip(names, fqe):
        cands[n].update({k: f[k] for k in OPE_METRICS + ('fqe_s',)})
    log('fitted Q evaluation done')
    from chef_loop.sim_eval import PolicySpec
    todo = [n for n in names if 'success' not in cands[n]]
    evals = process_map(BL._evaluate, [(n, PolicySpec('checkpoint', path=cands[n]['checkpoint']), per_triplet)
                                       for n in todo], args.workers)
    for n, ev in zip(todo, evals):
        cands[n].update(success=ev['pooled']['rate'], ci95=[ev['pooled']['low'], ev['pooled']['high']],
                        episodes=ev['pooled']['trials'], mean_staged_return=ev['mean_staged_return'])
    succ = [cands[n]['success'] for n in names]
    by_score: Dict[str, Any] = {}
    for score in SCORES:        # every offline score, over the candidates that have it
        have = [n for n in names if cands[n].get(score) is not None]
        if len(have) >= 3:
            top = max(have, key=lambda n: cands[n][score])
            by_score[score] = {'spearman': spearman([cands[n][score] for n in have],
                                                    [cands[n]['success'] for n in have]),
                               'candidates': len(have), 'top': top, 'top_success': cands[top]['success']}
    result = {
        'bench': 'ope', 'quick': args.quick, 'candidates': len(names), 'holdout_fraction': HOLDOUT,
        'train_episodes': len(train), 'holdout_episodes': len(held), 'episodes_per_triplet': per_triplet,
        'fqe_updates': fqe_updates, 'score': args.score, 'rescored_from': args.rescore or None,
        'spearman': by_score[args.score]['spearman'], 'best_success': max(succ),
        'by_score': by_score, 'per_candidate': cands, 'wall_s': time.monotonic() - t_start,
    }
    for n in names:
        c = cands[n]
        print(f'{n:<16} ' + '  '.join(f'{k} {c[k]:8.3f}' for k in SCORES if c.get(k) is not None) +
              f'  success {100 * c["success"]:5.1f} % [{100 * c["ci95"][0]:.0f}, {100 * c["ci95"][1]:.0f}]')
    for k, v in by_score.items():
        print(f'Spearman({k}, success) = {v["spearman"]:.2f} over {v["candidates"]} candidates; '
              f'its top {v["top"]} {100 * v["top_success"]:.0f} % (best {100 * max(succ):.0f} %)')
    Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {args.out} ({result["wall_s"] / 60:.1f} min)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
