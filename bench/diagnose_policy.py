"""Where does a policy lose episodes the scripted expert wins? A shadow expert diagnosis.

    python bench/diagnose_policy.py --checkpoint runs/.../policy.pt [--episodes-per-triplet 4]
    python bench/diagnose_policy.py --scripted 0.0          # the instrument on the expert itself

Each policy is rolled out in the ROS-free env (chef_loop.sim_eval.run_episode: the cells' safety
filter, deterministic actions) while a noise-free chef_sim.expert.ScriptedStacker reads the same
stacked observations and only *labels* them: its phase (reach, descend, close, lift, carry, place,
release, retreat) and the command it would have sent. Printed and written as JSON (--out):

* per episode: success, the furthest reward stage reached (reach_grasp > 0.9, lift > 0.9, hover,
  stack, stack_leave), the shadow's phase at the last tick, grasp retries the shadow counted;
* per shadow phase: ticks, mean squared arm error against the shadow's command, the rate at which the
  gripper command disagrees with the shadow's (open / close).

The shadow's phase tracks the scripted expert exactly, but not a learned policy: its transitions
test the expert's own alignment tolerances, so it can stay in 'reach' while a policy grasps with a
looser alignment. For learned policies read the furthest stage and the gripper switches
(bench/results/experiments/README.md, "Where BC loses episodes").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

STAGES = ('reach_grasp', 'lift', 'hover', 'stack', 'stack_leave')


class ShadowedPolicy:
    """Delegates to `policy`; a noise-free ScriptedStacker labels every observation it acts on."""

    def __init__(self, policy):
        from chef_sim.expert import ScriptedStacker
        self.policy = policy
        self.shadow = ScriptedStacker(noise_std=0.0)
        self.log: List[Dict[str, Any]] = []
        for name in ('kind', 'cameras', 'needs_objects', 'stack_keys', 'n_intentions', 'sha256', 'policy_id'):
            if hasattr(policy, name):
                setattr(self, name, getattr(policy, name))

    def reset(self, seed: int) -> None:
        self.policy.reset(seed)
        self.shadow.reset()
        self.log = []

    def act(self, obs, frame, intention: int, deterministic: bool) -> np.ndarray:
        want = self.shadow.act(obs)
        phase, attempt = self.shadow.phase, self.shadow._attempt
        a = np.asarray(self.policy.act(obs, frame, intention, deterministic), np.float32).reshape(5)
        self.log.append({'phase': phase, 'attempt': attempt,
                         'arm_se': float(np.mean((np.clip(a[:4], -1, 1) - want[:4]) ** 2)),
                         'grip_disagree': bool((a[4] > 0) != (want[4] > 0)), 'grip': bool(a[4] > 0)})
        return a

    def __getattr__(self, name):
        return getattr(self.policy, name)


def run(spec, episodes_per_triplet: int, seed: int) -> Dict[str, Any]:
    import torch
    torch.set_num_threads(1)
    from chef_contract.spec import INTENTIONS
    from chef_loop.sim_eval import TEST_TRIPLET_NAMES, build_policy, episode_seed, run_episode
    from chef_policy.runner import PolicyRunner
    from chef_policy.safety import load_limits
    from chef_policy.schedule import IntentionSchedule
    from chef_sim.env import RgbStackingEnv, SimConfig

    env = RgbStackingEnv(SimConfig(render_images=False, preset='fast'))
    policy = ShadowedPolicy(build_policy(spec))
    k = INTENTIONS.index('staged') if policy.n_intentions == len(INTENTIONS) else policy.n_intentions - 1
    runner = PolicyRunner(policy, schedule=IntentionSchedule(fixed=k), deterministic=True)
    episodes, per_phase = [], defaultdict(lambda: {'ticks': 0, 'arm_se': 0.0, 'grip_disagree': 0})
    limits = load_limits()
    for ti, triplet in enumerate(TEST_TRIPLET_NAMES):
        for e in range(episodes_per_triplet):
            s = episode_seed(seed, ti, e)
            best = {k_: 0.0 for k_ in STAGES}

            def on_step(info, best=best):
                for k_ in STAGES:
                    best[k_] = max(best[k_], float(info['reward_terms'][k_]))
            result = run_episode(env, runner, s, triplet, limits=limits, on_step=on_step)
            furthest = 'none'
            for k_ in STAGES:
                if best[k_] > 0.9:
                    furthest = k_
            log = policy.log
            for row in log:
                d = per_phase[row['phase']]
                d['ticks'] += 1
                d['arm_se'] += row['arm_se']
                d['grip_disagree'] += int(row['grip_disagree'])
            episodes.append({'triplet': triplet, 'seed': s, 'success': result.success,
                             'furthest_stage': furthest, 'final_phase': log[-1]['phase'] if log else '',
                             'retries': max((r['attempt'] for r in log), default=0),
                             'gripper_switches': sum(a['grip'] != b['grip'] for a, b in zip(log, log[1:])),
                             'phase_ticks': {ph: sum(r['phase'] == ph for r in log)
                                             for ph in dict.fromkeys(r['phase'] for r in log)}})
            print(json.dumps(episodes[-1]), flush=True)
    env.close()
    phases = {ph: {'ticks': d['ticks'], 'arm_mse': d['arm_se'] / max(1, d['ticks']),
                   'gripper_disagreement': d['grip_disagree'] / max(1, d['ticks'])}
              for ph, d in per_phase.items()}
    failed = [e for e in episodes if not e['success']]

    def hist(key, rows):
        out: Dict[str, int] = {}
        for r in rows:
            out[str(r[key])] = out.get(str(r[key]), 0) + 1
        return out
    return {'episodes': len(episodes), 'successes': len(episodes) - len(failed),
            'per_triplet': {t: sum(e['success'] for e in episodes if e['triplet'] == t) for t in TEST_TRIPLET_NAMES},
            'failed_furthest_stage': hist('furthest_stage', failed),
            'failed_final_phase': hist('final_phase', failed),
            'failed_retries': hist('retries', failed), 'all_retries': hist('retries', episodes),
            'gripper_switches_mean': float(np.mean([e['gripper_switches'] for e in episodes])),
            'gripper_switches_failed_mean': float(np.mean([e['gripper_switches'] for e in failed])) if failed else 0.0,
            'phases': phases, 'per_episode': episodes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='a chef policy checkpoint (.pt)')
    src.add_argument('--scripted', type=float, metavar='NOISE', help='the scripted expert with this noise')
    ap.add_argument('--episodes-per-triplet', type=int, default=4)
    ap.add_argument('--seed', type=int, default=500_000, help='evaluation scenes (default: validation scenes)')
    ap.add_argument('--out', default='', help='write the JSON here')
    args = ap.parse_args(argv)
    from chef_loop.sim_eval import PolicySpec
    spec = (PolicySpec('checkpoint', path=args.checkpoint) if args.checkpoint
            else PolicySpec('scripted', noise=args.scripted))
    res = run(spec, args.episodes_per_triplet, args.seed)
    res['policy'] = args.checkpoint or f'scripted({args.scripted:g})'
    short = {k: v for k, v in res.items() if k != 'per_episode'}
    print(json.dumps(short, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
