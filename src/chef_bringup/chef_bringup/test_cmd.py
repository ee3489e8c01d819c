"""`chef test`: the whole test suite through colcon, as CI runs it.

colcon test exits 0 on failures unless asked, and reports "0 tests" as success; this command asks
for the failure code, gives the run its own ROS domain, and fails when no test ran.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from chef_bringup.workspace import workspace_root

EPILOGS = {'test': """\
examples:
  chef test                                   every package, as CI does
  chef test --packages chef_contract          one package
  chef test -k watchdog                       tests whose name matches
"""}


def add_arguments(p):
    p.add_argument('--packages', nargs='+', default=None, help='only these packages')
    p.add_argument('-k', dest='keyword', default=None, help='pytest -k expression')
    p.add_argument('--parallel', action='store_true',
                   help='test packages in parallel (default: one after the other; 2-core machines '
                        'get more stable timing that way)')


def count_results(ws: Path):
    out = subprocess.run(['colcon', 'test-result', '--all'], cwd=ws, capture_output=True, text=True)
    m = re.search(r'Summary: (\d+) tests?, (\d+) errors?, (\d+) failures?, (\d+) skipped', out.stdout)
    if not m:
        return None, out.stdout + out.stderr
    return tuple(int(x) for x in m.groups()), out.stdout


def main(args) -> int:
    from chef_contract.testing import unique_domain_id
    ws = workspace_root()
    for old in ws.glob('build/*/pytest.xml'):
        old.unlink()
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(unique_domain_id())
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('MUJOCO_GL', 'egl')
    cmd = ['colcon', 'test', '--return-code-on-test-failure', '--event-handlers', 'console_direct+']
    if not args.parallel:
        cmd += ['--executor', 'sequential']
    if args.packages:
        cmd += ['--packages-select', *args.packages]
    if args.keyword:
        cmd += ['--pytest-args', '-k', args.keyword]
    print('+', ' '.join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ws, env=env)
    counts, text = count_results(ws)
    print(text.strip())
    if counts is None:
        print('chef test: could not read colcon test-result', file=sys.stderr)
        return rc or 1
    total, errors, failures, skipped = counts
    if total == 0:
        print('chef test: FAILED - no test ran', file=sys.stderr)
        return 1
    if rc != 0 or errors or failures:
        print(f'chef test: FAILED ({failures} failures, {errors} errors of {total})', file=sys.stderr)
        return rc or 1
    print(f'chef test: OK - {total} tests, {skipped} skipped')
    return 0
