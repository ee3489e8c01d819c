"""Test helpers shared by every package's tests (no pytest import at module level).

* `unique_domain_id()` hands out a ROS_DOMAIN_ID no other live test process holds, so tests of
  different packages (colcon runs them in parallel) and dead peers of earlier runs never cross-talk.
* `executable(package, name)` finds an installed console script of a workspace package.
* `ros_env(domain)` is the environment for child processes of a cross-process test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

from chef_contract.domains import DOMAIN_RANGE, reserve_domain_id as unique_domain_id  # noqa: F401


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
