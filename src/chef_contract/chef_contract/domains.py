"""ROS domain ids reserved per process, so independent graphs (tests, CHEF stages, a crashed
earlier run whose nodes linger for the 20 s DDS lease) never talk to each other."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Dict

_LOCK_DIR = Path(os.environ.get('CHEF_DOMAIN_LOCK_DIR', '/tmp/chef_ros_domains'))
_HELD: Dict[int, int] = {}
DOMAIN_RANGE = (110, 200)     # kept clear of the default 0 and the usual small ids; all < 233


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def reserve_domain_id() -> int:
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




def release_domain_id(did: int) -> None:
    """Give a reserved id back early (long-lived processes that start many graphs)."""
    if _HELD.pop(did, None) is not None:
        try:
            (_LOCK_DIR / f'{did}.pid').unlink()
        except FileNotFoundError:
            pass
