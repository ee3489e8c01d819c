"""Test helpers shared by every package's tests (no pytest import at module level).

* `unique_domain_id()` hands out a ROS_DOMAIN_ID no other live test process holds, so tests of
  different packages (colcon runs them in parallel) and dead peers of earlier runs never cross-talk.
* `executable(package, name)` finds an installed console script of a workspace package.
* `ros_env(domain)` is the environment for child processes of a cross-process test.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Dict, Optional

_LOCK_DIR = Path(os.environ.get('CHEF_DOMAIN_LOCK_DIR', '/tmp/chef_ros_domains'))
_HELD: Dict[int, int] = {}
DOMAIN_RANGE = (110, 200)     # kept clear of the default 0 and the usual small ids; all < 233


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def unique_domain_id() -> int:
    """Reserve a ROS domain id for this process (released when the process dies)."""
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    ids = list(range(*DOMAIN_RANGE))
    random.shuffle(ids)
    for did in ids:
        if did in _HELD:
            continue
        path = _LOCK_DIR / f'{did}.pid'
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(path.read_text().strip() or '0')
            except (OSError, ValueError):
                owner = 0
            if owner and _alive(owner):
                continue
            try:
                path.unlink()
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except OSError:
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        _HELD[did] = os.getpid()
        return did
    raise RuntimeError('no free ROS domain id for tests')


def executable(package: str, name: str) -> str:
    """Path of console script `name` installed by workspace package `package`."""
    from ament_index_python.packages import get_package_prefix
    path = Path(get_package_prefix(package)) / 'lib' / package / name
    if not path.exists():
        raise FileNotFoundError(f'{package} does not install an executable {name!r} ({path})')
    return str(path)


def ros_env(domain_id: int, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    env.setdefault('MUJOCO_GL', 'egl')
    if extra:
        env.update(extra)
    return env
