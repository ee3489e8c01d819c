"""`chef report`: the HTML report (PNG plots) of a CHEF run."""

from __future__ import annotations

from pathlib import Path

EPILOGS = {'report': """examples:
  chef report                       runs/default/report/index.html
  chef report --name exp1 --out /tmp/exp1_report
"""}


def add_arguments(p):
    p.add_argument('--config', default='default', help='config/chef/<name>.yaml or a path (for the run name)')
    p.add_argument('--name', default=None, help='run name (default: the config\'s name)')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='config overrides used by the run (e.g. runs_dir=/tmp/runs)')
    p.add_argument('--out', type=Path, default=None, help='output directory (default runs/<name>/report)')


def main(args) -> int:
    from chef_loop.config import load_loop_config
    from chef_loop.report import build_report
    from chef_loop.stages import ChefRun
    cfg = load_loop_config(args.config, list(args.overrides) + ([f'name={args.name}'] if args.name else []))
    if not (cfg.run_dir / 'state.json').is_file():
        raise FileNotFoundError(f'no CHEF run in {cfg.run_dir} (run `chef loop` first)')
    run = ChefRun(cfg, progress=False, record_config=False)     # reading a run leaves its config.yaml as is
    path = build_report(run, args.out)
    print(f'report: {path}')
    return 0
