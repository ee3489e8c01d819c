"""`chef`: the command line of the CHEF stack.

Each subcommand lives in the package that owns the work and is imported only when used, so
`chef --help` stays fast (no torch, no MuJoCo). A subcommand module provides
`add_arguments(parser)` and `main(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import List, Optional, Tuple

# (name, module, one-line help). Order = the order a new user meets them.
COMMANDS: Tuple[Tuple[str, str, str], ...] = (
    ('run', 'chef_bringup.run_cmd',
     'start a node graph (sim cell, self-check, ...) - the same graphs the launch files describe'),
    ('graph', 'chef_bringup.graph_cmd', 'list graphs, show the processes a graph would start'),
    ('data', 'chef_recorder.cli', 'recorded episodes: ls | info | verify | repair | rebuild-catalog'),
    ('collect', 'chef_loop.cli', 'C: online multi-task RL on the cells, every episode recorded'),
    ('explore', 'chef_loop.cli', 'H: offline-RL hyperparameter search on all data (Ray Tune)'),
    ('execute', 'chef_loop.cli', 'E: run the best candidates on the cells (evaluate + collect)'),
    ('finetune', 'chef_loop.cli', 'F: continue training the best policy on all data'),
    ('loop', 'chef_loop.cli', 'the CHEF loop: collect -> explore -> execute -> finetune, iterated'),
    ('ablate', 'chef_loop.cli', 'run one ablation (multi-task, wrench input, size, reuse...)'),
    ('report', 'chef_loop.report_cmd', 'HTML report with plots of a CHEF run'),
    ('status', 'chef_loop.status_cmd', 'live view of the cells and the run: terminal, --once, or --web page'),
    ('bench', 'chef_bringup.bench_cmd', 'run the benchmarks in bench/ and print their ratios'),
    ('test', 'chef_bringup.test_cmd', 'run the whole test suite (colcon test), as CI does'),
)

EPILOG = """\
first steps:
  chef run selfcheck --duration 5     check that nodes of this install talk over DDS
  chef run sim                        one MuJoCo RGB-Stacking cell with policy, safety and recorder
  chef loop                           one small CHEF iteration on the sim cells (the README's job)
  chef data ls                        what has been recorded so far
  chef status                         the live cells and the run's progress (--web: as a page)
  chef <command> --help               what a command does and its options
"""


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='chef', description='CHEF on ROS 2: collect, explore hyperparameters, execute, fine-tune '
        '- on MuJoCo cells here, on real RGB-Stacking cells with the same nodes.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', metavar='<command>')
    for name, module, helptext in COMMANDS:
        if not _available(module):
            continue
        sub.add_parser(name, help=helptext, add_help=False)
    return parser


def _subparser(name: str, module: str, helptext: str) -> argparse.ArgumentParser:
    mod = importlib.import_module(module)
    p = argparse.ArgumentParser(prog=f'chef {name}', description=getattr(mod, 'DESCRIPTIONS', {}).get(
        name, helptext), formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=getattr(mod, 'EPILOGS', {}).get(name))
    adder = getattr(mod, f'add_{name}_arguments', None) or mod.add_arguments
    adder(p)
    p.set_defaults(_module=mod, _command=name)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        return 0
    name = argv[0]
    table = {n: (m, h) for n, m, h in COMMANDS}
    if name not in table or not _available(table[name][0]):
        parser.parse_args(argv[:1])      # prints the usage error with the valid choices
        return 2
    module, helptext = table[name]
    sub = _subparser(name, module, helptext)
    args = sub.parse_intermixed_args(argv[1:])
    mod = args._module
    runner = getattr(mod, f'main_{name}', None) or mod.main
    try:
        return int(runner(args) or 0)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing errors: one clear line, traceback with CHEF_DEBUG=1
        import os
        from chef_contract.config import ConfigError
        if os.environ.get('CHEF_DEBUG') or not isinstance(exc, (ConfigError, FileNotFoundError,
                                                                  ValueError, RuntimeError)):
            raise
        print(f'chef {name}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
