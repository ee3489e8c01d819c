"""`chef bench [name ...]`: run benchmarks from bench/; each prints its figures and its ratio to a
baseline measured in the same run, and writes bench/results/<name>.json.

The independent baselines some benches train (d3rlpy 2.8.1) are not in the runtime requirements:
the first `chef bench` that needs them installs requirements-bench.txt into the workspace's venv
(a fresh machine would otherwise record every d3rlpy learner as an import error)."""

from __future__ import annotations

import importlib.util
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


NEEDS_BENCH_REQUIREMENTS = ('learning', 'learners')    # benches that train d3rlpy baselines


def ensure_bench_requirements(ws) -> None:
    """pip-install requirements-bench.txt (with the runtime constraints) when d3rlpy is missing."""
    if importlib.util.find_spec('d3rlpy') is not None:
        return
    print('chef bench: installing the benchmark baselines (requirements-bench.txt)', flush=True)
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '-r', str(ws / 'requirements-bench.txt'),
                    '-c', str(ws / 'constraints.txt')], check=True, cwd=ws)


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
    if any(n in NEEDS_BENCH_REQUIREMENTS for n in names):
        ensure_bench_requirements(ws)
    rc = 0
    for name in names:
        print(f'=== bench {name} ===', flush=True)
        cmd = [sys.executable, str(benches[name])] + (['--quick'] if args.quick else [])
        rc = subprocess.call(cmd, cwd=ws) or rc
    return rc
