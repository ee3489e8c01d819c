"""ROS domain ids reserved per process, so independent graphs (tests, CHEF stages, a crashed
earlier run whose nodes linger for the 20 s DDS lease) never talk to each other.

Ids are drawn from a range: `CHEF_DOMAIN_RANGE` (environment, e.g. `110-199`) when set, else the
range the caller was configured with (the CHEF loop's `cells.domain_range`), else 110-199.
ROS allows 0-232 (DDS ports 7400 + 250 * id must fit in 16 bits). The ROS docs call 0-101 and
215-232 safe on Linux: the ports of ids 102-214 fall in the kernel's ephemeral port range
(32768-60999), where the OS may already have handed a port to another program. The default stays
clear of 0 (every other ROS process) and of the small ids people pick by hand.
"""

from __future__ import annotations

import errno
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from chef_contract.config import ConfigError

_LOCK_DIR = Path(os.environ.get('CHEF_DOMAIN_LOCK_DIR', '/tmp/chef_ros_domains'))
_HELD: Dict[int, int] = {}
_OWNER_LABEL = ['']                 # set_owner_label(): what this process reserves domains for
OWNER_LABEL_ENV = 'CHEF_DOMAIN_OWNER'    # the same for child processes (Ray workers of a loop)
DOMAIN_RANGE_ENV = 'CHEF_DOMAIN_RANGE'
MAX_DOMAIN_ID = 232                       # 7400 + 250 * 232 + participant ports < 65536
DEFAULT_DOMAIN_RANGE: Tuple[int, int] = (110, 199)     # inclusive
DEFAULT_DOMAIN_RANGE_TEXT = f'{DEFAULT_DOMAIN_RANGE[0]}-{DEFAULT_DOMAIN_RANGE[1]}'


def parse_domain_range(text: str, source: str = 'domain range') -> Tuple[int, int]:
    """'LO-HI' (inclusive) or one id 'N' -> (lo, hi); ConfigError with a one-line reason otherwise."""
    s = str(text).strip()
    parts = s.split('-') if '-' in s else [s, s]
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = (int(p.strip()) for p in parts)
    except ValueError:
        raise ConfigError(f'{source} {text!r}: expected LO-HI (ROS domain ids, e.g. '
                          f'{DEFAULT_DOMAIN_RANGE_TEXT}) or one id') from None
    if not 0 <= lo <= hi <= MAX_DOMAIN_ID:
        raise ConfigError(f'{source} {text!r}: need 0 <= LO <= HI <= {MAX_DOMAIN_ID} (ROS domain ids)')
    return lo, hi


def domain_range(configured: Optional[str] = None) -> Tuple[int, int]:
    """The range ids are reserved from: $CHEF_DOMAIN_RANGE, else `configured`, else 110-199."""
    env = os.environ.get(DOMAIN_RANGE_ENV, '').strip()
    if env:
        return parse_domain_range(env, DOMAIN_RANGE_ENV)
    if configured:
        return parse_domain_range(configured)
    return DEFAULT_DOMAIN_RANGE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def reserve_domain_id(id_range: Optional[Tuple[int, int]] = None) -> int:
    """Reserve a ROS domain id of `id_range` (inclusive; default `domain_range()`) for this process
    (released when the process dies)."""
    lo, hi = id_range if id_range is not None else domain_range()
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    ids = list(range(lo, hi + 1))
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
        _write_owner(did)
        return did
    raise RuntimeError(f'no free ROS domain id in {lo}-{hi} (held by live processes, see {_LOCK_DIR}; '
                       f'widen it with {DOMAIN_RANGE_ENV}=LO-HI)')


def release_domain_id(did: int) -> None:
    """Give a reserved id back early (long-lived processes that start many graphs)."""
    if _HELD.pop(did, None) is not None:
        for suffix in ('.json', '.pid'):
            try:
                (_LOCK_DIR / f'{did}{suffix}').unlink()
            except FileNotFoundError:
                pass


# --- who holds a domain (read by `chef status`) -------------------------------------------------
# Beside each `<id>.pid` lock, `<id>.json` says what the id was reserved for: the owner's pid, its
# command line and a label (the CHEF loop sets its run directory), so a monitor on this host can
# find the live cells of a run without being told their domain.

@dataclass(frozen=True)
class DomainReservation:
    domain: int
    pid: int
    label: str = ''                  # e.g. the run directory of the `chef loop` that holds it
    argv: Tuple[str, ...] = ()
    reserved_unix: float = 0.0


def set_owner_label(label: str) -> None:
    """Label every domain this process and its children reserve from now on (the CHEF loop: its run
    directory; children inherit it through $CHEF_DOMAIN_OWNER)."""
    _OWNER_LABEL[0] = str(label)
    os.environ[OWNER_LABEL_ENV] = str(label)


def _write_owner(did: int) -> None:
    label = _OWNER_LABEL[0] or os.environ.get(OWNER_LABEL_ENV, '')
    info = {'domain': did, 'pid': os.getpid(), 'label': label, 'argv': list(sys.argv),
            'reserved_unix': time.time()}
    tmp = _LOCK_DIR / f'.{did}.json.tmp{os.getpid()}'
    try:
        tmp.write_text(json.dumps(info))
        os.replace(tmp, _LOCK_DIR / f'{did}.json')
    except OSError:
        pass                          # the label is a convenience; the .pid lock is the reservation


def live_reservations() -> List[DomainReservation]:
    """Every domain id held by a live process on this host, with its owner's label if it wrote one."""
    out = []
    for path in sorted(_LOCK_DIR.glob('*.pid')) if _LOCK_DIR.is_dir() else ():
        try:
            did, pid = int(path.stem), int(path.read_text().strip() or '0')
        except (OSError, ValueError):
            continue
        if not pid or not _alive(pid):
            continue
        info = {}
        try:
            info = json.loads((_LOCK_DIR / f'{did}.json').read_text())
        except (OSError, ValueError):
            pass
        if info.get('pid') != pid:    # a sidecar of an earlier holder of the same id
            info = {}
        out.append(DomainReservation(did, pid, str(info.get('label', '')), tuple(info.get('argv', ())),
                                     float(info.get('reserved_unix', 0.0))))
    return sorted(out, key=lambda r: r.domain)
