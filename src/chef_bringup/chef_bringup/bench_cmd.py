"""`chef bench [name ...]`: run benchmarks from bench/; each prints its figures and its ratio to a
baseline measured in the same run, and writes bench/results/<name>.json."""

from __future__ import annotations

import subprocess
import sys

from chef_bringup.workspace import workspace_root

EPILOGS = {'bench': """\
examples:
  chef bench --list              the benchmarks and what each measures
  chef bench sim                 run bench/bench_sim.py
  chef bench --quick             every benchmark, short versions
"""}


def add_arguments(p):
    p.add_argument('names', nargs='*', help='benchmarks to run (default: all); see --list')
    p.add_argument('--list', action='store_true', help='list the benchmarks')
    p.add_argument('--quick', action='store_true', help='short runs (smoke check, noisier numbers)')


def _benches(ws):
    return {p.stem.removeprefix('bench_'): p for p in sorted((ws / 'bench').glob('bench_*.py'))}


def _summary(path):
    for line in path.read_text().splitlines():
        s = line.strip().strip('"').strip()
        if s:
            return s
    return ''


def main(args) -> int:
    ws = workspace_root()
    benches = _benches(ws)
    if args.list:
        for name, path in benches.items():
            print(f'{name:16s} {_summary(path)}')
        return 0
    names = args.names or list(benches)
    unknown = [n for n in names if n not in benches]
    if unknown:
        raise ValueError(f'unknown benchmark(s) {unknown}; known: {list(benches)}')
    rc = 0
    for name in names:
        print(f'=== bench {name} ===', flush=True)
        cmd = [sys.executable, str(benches[name])] + (['--quick'] if args.quick else [])
        rc = subprocess.call(cmd, cwd=ws) or rc
    return rc
