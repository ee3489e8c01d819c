"""`learn`: run the learners from a shell, without ROS.

    learn offline --config crr_state_ci --data data --steps 20000 --run-dir runs/crr
    learn offline ... --init runs/collect/checkpoints/step_000050000.pt      # fine-tune
    learn online --config mpo_reach_ci --env-steps 3000 --run-dir runs/mpo --sim preset=fast

Rerunning with the same --run-dir resumes from its newest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='learn', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='mode', required=True)
    for name in ('offline', 'online'):
        s = sub.add_parser(name)
        s.add_argument('--config', default=None,
                       help='learner YAML: a path or a name in config/learners (e.g. crr_state_ci)')
        s.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                       help='config override, e.g. learner.crr.beta=0.5 (repeatable)')
        s.add_argument('--run-dir', required=True)
        s.add_argument('--init', default=None, help='start from these weights (fine-tune)')
        s.add_argument('--no-resume', action='store_true')
        s.add_argument('--checkpoint-every', type=int, default=0)
        s.add_argument('--device', default=None)
        s.add_argument('--threads', type=int, default=1,
                       help='torch CPU threads (default 1: on a busy 2-core machine one thread ran CRR '
                            '~20x faster than the default)')
        s.add_argument('--quiet', action='store_true', help='no progress bar')
    off = sub.choices['offline']
    off.add_argument('--data', required=True, help='recorder data directory')
    off.add_argument('--steps', type=int, required=True, help='total learner updates')
    off.add_argument('--filter', action='append', default=[], metavar='KEY=VALUE',
                     help='catalog filter, e.g. source=sim (repeatable)')
    on = sub.choices['online']
    on.add_argument('--env-steps', type=int, required=True)
    on.add_argument('--sim', action='append', default=[], metavar='KEY=VALUE',
                    help='chef_sim SimConfig override, e.g. preset=fast (repeatable)')
    on.add_argument('--triplet', default=None)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f'learn: --threads must be >= 1, got {args.threads}')
    import torch
    torch.set_num_threads(args.threads)
    from chef_trainer.config import load_learner_config
    from chef_trainer.config import resolve_config_path
    cfg = load_learner_config(resolve_config_path(args.config or ''), args.set)
    if args.mode == 'offline':
        from chef_recorder.dataset import Dataset
        from chef_trainer.offline import make_sampler, train_offline
        from chef_trainer.config import parse_filters
        ds = Dataset(args.data)
        records = ds.training_records(**parse_filters(','.join(args.filter)))
        sampler = make_sampler((ds, records), cfg.learner)
        _, summary = train_offline(cfg, sampler, args.steps, args.run_dir, init_checkpoint=args.init,
                                   progress=not args.quiet, resume=not args.no_resume,
                                   checkpoint_every=args.checkpoint_every, device=args.device)
    else:
        from chef_contract.config import apply_overrides, from_dict
        from chef_sim.env import RgbStackingEnv, SimConfig
        from chef_trainer.online import OnlineLearner
        sim = {'render_images': bool(cfg.learner.network.image_keys)}
        if cfg.online.episode_steps:
            sim['episode_steps'] = cfg.online.episode_steps
        sim_cfg = from_dict(SimConfig, apply_overrides(sim, args.sim))
        env = RgbStackingEnv(sim_cfg)
        learner = OnlineLearner(cfg, args.run_dir, device=args.device, resume=not args.no_resume,
                                init_checkpoint=args.init, checkpoint_every=args.checkpoint_every)
        try:
            summary = learner.run_env(env, args.env_steps, progress=not args.quiet, triplet=args.triplet)
        finally:
            learner.close()
    print(json.dumps({k: v for k, v in summary.items() if k not in ('final', 'mean')}, indent=2,
                     default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
