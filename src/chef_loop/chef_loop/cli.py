"""`chef collect | explore | execute | finetune | loop | ablate`: the CHEF stages as commands.

Import-light (no torch, no ROS at import): the work happens in chef_loop.stages.
"""

from __future__ import annotations

import argparse

from chef_loop.config import STAGES

_COMMON_EPILOG = """
Runs live in runs/<name>/ (config.yaml, state.json with lineage, per-stage logs and trials); the
episode store is runs/<name>/data unless data_dir is set. Re-running a command resumes: finished
stages are skipped, a stage interrupted mid-way continues without losing or duplicating episodes.
Configs: config/chef/default.yaml (the README's small run), config/chef/large.yaml, and policies
from pixels: config/chef/pixels_cpu.yaml (64 px, 2 CPU cores), pixels.yaml (128 px, an
accelerator); any key can be overridden with --set, e.g. --set cells.cells=4 --set explore.trials=8. The cells' ROS domain ids
come from cells.domain_range (default 110-199); the environment variable CHEF_DOMAIN_RANGE=LO-HI
overrides it. --set ray_address=auto runs every stage on the Ray cluster this machine belongs to
(cells as Ray actors, their episodes shipped into the store; docs/loop.md).
"""

DESCRIPTIONS = {
    'loop': 'The CHEF loop on the simulated cells: Collect (online multi-task RL, every episode '
            'recorded) -> Hyperparameter exploration (offline RL on all data, Ray Tune) -> Execute '
            '(best candidates act: evaluation + more data) -> Fine-tune (continue the best policy on '
            'all data), iterated. Prints success per stage and per test triplet.',
    'collect': 'C: online multi-task RL (SAC-X style learner in the trainer node) acting on the '
               'cells, plus the optional noisy scripted expert; every episode recorded and tagged.',
    'explore': 'H: K offline-RL (CRR) configurations from the search space, each trained on ALL '
               'episodes so far, on Ray Tune; the top candidates go to Execute.',
    'execute': 'E: the candidates act on the cells for E episodes per test triplet; success per '
               'triplet with Wilson 95 %% intervals; the best is selected by measured success.',
    'finetune': 'F: continue training the best policy on all data (including Execute episodes) and '
                'evaluate it; compares its updates with the from-scratch training.',
    'ablate': 'One ablation on an existing run\'s episode store: variants trained for equal updates '
              'and evaluated on the cells, reported with intervals.',
}
EPILOGS = {k: _COMMON_EPILOG for k in DESCRIPTIONS}
EPILOGS['loop'] = """examples:
  chef loop                                  the small default run (<= 20 min on 2 CPU cores)
  chef loop --config large                   the documented larger run (3 iterations, ~75 min)
  chef loop --name exp1 --iterations 2       two CHEF iterations (= --set iterations=2)
  chef report                                HTML report of the default run
""" + _COMMON_EPILOG
EPILOGS['ablate'] = """ablations: multitask, wrench, size, finetune, reuse
examples:
  chef ablate multitask                      on the default run's data
  chef ablate wrench --name exp1 --steps 3000
""" + _COMMON_EPILOG


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument('--config', default='default', help='config/chef/<name>.yaml or a path (default: default)')
    p.add_argument('--name', default=None, help='run name (default: the config\'s name)')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config key (repeatable), e.g. cells.cells=4')
    p.add_argument('--no-progress', action='store_true', help='no progress bars (logs only)')


def add_loop_arguments(p):
    _common(p)
    p.add_argument('--stages', nargs='+', choices=STAGES, default=list(STAGES),
                   help='stages to run in each iteration (default: all four)')
    p.add_argument('--iterations', type=int, default=None, metavar='N',
                   help="CHEF iterations (default: the config's; same as --set iterations=N)")


def _stage_adder(p):
    _common(p)
    p.add_argument('--iteration', type=int, default=0, help='CHEF iteration (default 0)')
    p.add_argument('--force', action='store_true', help='run the stage again even if it is done')


add_collect_arguments = add_explore_arguments = add_execute_arguments = add_finetune_arguments = _stage_adder


def add_ablate_arguments(p):
    from chef_loop.ablate import ABLATIONS
    p.add_argument('ablation', choices=ABLATIONS, help='which ablation')
    _common(p)
    p.add_argument('--steps', type=int, default=None, help='updates per variant (default: explore.steps)')
    p.add_argument('--episodes-per-triplet', type=int, default=None,
                   help='evaluation episodes per test triplet (default: execute.episodes_per_triplet)')


def add_arguments(p):
    add_loop_arguments(p)


def _run(args):
    from chef_loop.config import load_loop_config
    from chef_loop.stages import ChefRun
    overrides = list(args.overrides)
    if args.name:
        overrides.append(f'name={args.name}')
    if getattr(args, 'iterations', None) is not None:
        overrides.append(f'iterations={args.iterations}')
    cfg = load_loop_config(args.config, overrides)
    from chef_contract.domains import set_owner_label
    set_owner_label(str(cfg.run_dir.resolve()))    # `chef status` finds this run's cells by it
    return ChefRun(cfg, progress=not args.no_progress)


def main_loop(args) -> int:
    from chef_loop.summary import print_summary
    run = _run(args)
    print(f'CHEF run {run.cfg.name}: {run.run_dir} (data: {run.data_dir})')
    run.loop(args.stages)
    print_summary(run)
    print(f'report: chef report --name {run.cfg.name}')
    return 0


def _main_stage(stage):
    def main(args) -> int:
        from chef_loop.summary import print_summary
        run = _run(args)
        run.run_stage(args.iteration, stage, force=args.force)
        print_summary(run)
        return 0
    return main


main_collect = _main_stage('collect')
main_explore = _main_stage('explore')
main_execute = _main_stage('execute')
main_finetune = _main_stage('finetune')


def main_ablate(args) -> int:
    from chef_loop.ablate import run_ablation
    from chef_loop.stats import Rate
    run = _run(args)
    rep = run_ablation(run, args.ablation, args.steps, args.episodes_per_triplet)
    print(f'ablation {args.ablation} ({run.run_dir}/ablations/{args.ablation}/result.json):')
    for v in rep['variants']:
        m = v['success']['mean']
        r = Rate(m['successes'], m['trials'], m['low'], m['high'])
        print(f'  {v["variant"]:20s} success {r}   mean staged return {v["mean_staged_return"]:.1f}')
    return 0


main = main_loop
