"""Pixel reward vs sim ground truth: object position error, staged-reward error and success agreement of chef_real's reward-from-pixels on MuJoCo renders of the two front cameras, against the pose-only criterion on true positions (baseline)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--quick', action='store_true', help='3 episodes instead of 20')
    p.add_argument('--episodes', type=int, default=None)
    p.add_argument('--seed', type=int, default=1000, help='first episode seed (held out from tuning)')
    p.add_argument('--preset', default='fast', choices=['fast', 'faithful'])
    args = p.parse_args(argv)
    n = args.episodes or (3 if args.quick else 20)

    from tqdm import tqdm

    from chef_contract.spec import TEST_TRIPLETS
    from chef_real.validation import PixelReward, ScriptedStacker, make_sim_env, run_episode, sim_cameras, summarize

    env = make_sim_env(preset=args.preset)
    triplets = list(TEST_TRIPLETS)
    episodes = []
    t0 = time.perf_counter()
    try:
        pixel = PixelReward(sim_cameras(env))
        for i in tqdm(range(n), desc='episodes', unit='ep'):
            seed = args.seed + i
            episodes.append(run_episode(env, pixel, ScriptedStacker(), seed, triplets[i % len(triplets)], 400))
    finally:
        env.close()
    wall = time.perf_counter() - t0
    s = summarize(episodes)
    s.update({'preset': args.preset, 'first_seed': args.seed, 'wall_s': wall,
              'triplets': [e.triplet for e in episodes],
              'episode_true_success': [e.true_success for e in episodes],
              'episode_est_success': [e.est_success for e in episodes]})
    base = s['tick_success_agreement_true_positions']
    s['ratio_to_true_position_baseline'] = s['tick_success_agreement'] / base if base else float('nan')

    print(f'pixel reward vs sim ground truth: {n} episodes x 400 ticks ({args.preset} physics), '
          f'{s["ticks"]} ticks, {wall:.0f} s')
    for c, e in s['position_error_m'].items():
        print(f'  position error {c:5s}: mean {1e3 * e["mean"]:5.1f} mm  median {1e3 * e["median"]:5.1f} mm  '
              f'p95 {1e3 * e["p95"]:5.1f} mm  max {1e3 * e["max"]:5.1f} mm')
    print(f'  positions within {100 * s["position_tolerance_m"]:.0f} cm: {100 * s["position_within_tolerance"]:.1f} %')
    print(f'  staged reward mean |error|: {s["staged_abs_error_mean"]:.4f} (range 0..1)')
    print(f'  stack term (stage 4) agreement per tick: {100 * s["tick_stack_agreement"]:.1f} %')
    print(f'  sparse success agreement per tick: {100 * s["tick_success_agreement"]:.1f} % '
          f'(TP {s["tick_success_true_positives"]}, FP {s["tick_success_false_positives"]}, '
          f'FN {s["tick_success_false_negatives"]}; true-success ticks {100 * s["tick_success_true_rate"]:.1f} %)')
    print(f'  baseline, pose-only criterion on TRUE positions: {100 * base:.1f} %  -> ratio '
          f'{s["ratio_to_true_position_baseline"]:.3f}; always-false: '
          f'{100 * s["tick_success_agreement_always_false"]:.1f} %')
    print(f'  episode success agreement (final tick): {100 * s["episode_success_agreement"]:.1f} % '
          f'(true successes {s["episode_success_true"]}/{n}, estimated {s["episode_success_est"]}/{n})')
    print(f'  estimator cost: {s["estimate_ms_mean"]:.2f} ms per tick (2 images 128x128)')
    out = ROOT / 'bench' / 'results'
    out.mkdir(parents=True, exist_ok=True)
    (out / 'pixel_reward.json').write_text(json.dumps(s, indent=2, default=float))
    print(f'wrote {out / "pixel_reward.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
