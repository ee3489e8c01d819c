"""A local Ray for Explore that leaves no process and no directory behind, also after a kill -9.

Killing the loop's driver kills Ray's gcs_server and raylet with it (Ray ties them to the driver),
but not the dashboard and runtime-env agents the raylet started, nor Ray's session directory. So:

* the temporary directory is per run and short: `<tmp>/chef-ray-<hash of the run dir>` (Ray's unix
  sockets live under it, and a socket path must stay under 108 bytes), not the shared /tmp/ray;
* every process of the local Ray carries `CHEF_RAY_OWNER=<run hash>:<driver pid>:<driver start
  time>` in its environment: set only while `ray.init` starts the head, inherited by everything
  the raylet starts, and readable in /proc/<pid>/environ after Ray renamed the process
  (`ray::IDLE`, `ray::DashboardAgent`) and hid its command line. Renaming sometimes overwrites the
  environment block too (seen on the agents), so a process that holds a file under the run's Ray
  directory open (its logs, or the raylet's stdout it inherited) counts as the run's as well;
* before a run starts Ray (and when a CHEF run opens its directory) processes of this run whose
  driver is gone are killed and the directory is removed (`clean_stale_ray`);
* on the way out (normal end, exception, Ctrl-C, SIGTERM) `ray.shutdown()`, then the same sweep for
  the driver's own processes and the directory.

A cluster (`explore.ray_address`) is someone else's: only connected to and disconnected from.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

OWNER_ENV = 'CHEF_RAY_OWNER'
_MAX_TMP_BASE = 20          # chars: chef-ray-<hash>/session_<date>_<pid>/sockets/plasma_store adds ~87


def run_key(run_dir) -> str:
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]


def ray_temp_dir(run_dir) -> Path:
    """Ray's temporary directory of the run at `run_dir` (short enough for Ray's unix sockets)."""
    base = Path(tempfile.gettempdir())
    if len(str(base)) > _MAX_TMP_BASE:
        base = Path('/tmp')
    return base / f'chef-ray-{run_key(run_dir)}'


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None if it is
    gone or a zombie. With the pid it names one process, also after the pid is reused."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(')') + 2:].split()
    if fields[0] in ('Z', 'X'):
        return None
    return fields[19]


def _owner(pid: int) -> Optional[str]:
    try:
        env = Path(f'/proc/{pid}/environ').read_bytes()
    except OSError:                 # gone, or another user's
        return None
    prefix = f'{OWNER_ENV}='.encode()
    for item in env.split(b'\0'):
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors='replace')
    return None


def _holds_file_in(pid: int, tmp: str) -> bool:
    """Whether the process has a file under `tmp` open (every Ray process holds log files of its
    session directory: its own, or the raylet's stdout and stderr it inherited), also after the
    directory was removed ('... (deleted)')."""
    try:
        fds = os.listdir(f'/proc/{pid}/fd')
    except OSError:                 # gone, or another user's
        return False
    for fd in fds:
        try:
            if os.readlink(f'/proc/{pid}/fd/{fd}').startswith(tmp):
                return True
        except OSError:
            pass
    return False


def ray_processes(run_dir) -> Dict[int, Tuple[int, str]]:
    """Live processes of the local Ray of the run at `run_dir`: pid -> (driver pid, driver start
    time); (0, '') for one without the owner variable that holds a file of the run's Ray directory
    open (Ray's renamed agents may lose their environment block to the new process title)."""
    key = run_key(run_dir)
    tmp = f'{ray_temp_dir(run_dir)}/'
    me = os.getpid()
    out: Dict[int, Tuple[int, str]] = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        parts = (_owner(pid) or '').split(':')
        if len(parts) == 3 and parts[0] == key and parts[1].isdigit():
            driver = (int(parts[1]), parts[2])
        elif _holds_file_in(pid, tmp):
            driver = (0, '')
        else:
            continue
        if _start_time(pid) is not None:
            out[pid] = driver
    return out


def _driver_alive(driver: Tuple[int, str]) -> bool:
    return _start_time(driver[0]) == driver[1]


def _kill_all(pids, timeout_s: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_start_time(p) is not None for p in pids):
        time.sleep(0.05)


def clean_stale_ray(run_dir, log: Callable[[str], None] = print) -> int:
    """Kill the local-Ray processes of the run at `run_dir` whose driver is dead, and remove the
    run's Ray directory unless a live driver still uses it. Returns the number of processes killed."""
    procs = ray_processes(run_dir)
    stale = [pid for pid, drv in procs.items() if not _driver_alive(drv)]
    if stale:
        log(f'  ray: killing {len(stale)} process(es) a killed run left behind')
        _kill_all(stale)
    tmp = ray_temp_dir(run_dir)
    if tmp.exists() and not any(_driver_alive(drv) for drv in procs.values()):
        shutil.rmtree(tmp, ignore_errors=True)
    return len(stale)


def _own_token(run_dir) -> str:
    return f'{run_key(run_dir)}:{os.getpid()}:{_start_time(os.getpid())}'


def _sweep_own(run_dir) -> None:
    me = os.getpid()
    _kill_all([pid for pid, drv in ray_processes(run_dir).items() if drv[0] in (me, 0)])
    shutil.rmtree(ray_temp_dir(run_dir), ignore_errors=True)


@contextlib.contextmanager
def ray_session(run_dir, num_cpus: int, address: str = '', log: Callable[[str], None] = print
                ) -> Iterator[None]:
    """`with ray_session(run_dir, num_cpus):` a local Ray (or a connection to the cluster at
    `address`) that is gone with everything it started when the block ends, however it ends."""
    import ray
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level='WARNING',
                  ignore_reinit_error=True)
    main = threading.current_thread() is threading.main_thread()
    old_term = signal.getsignal(signal.SIGTERM) if main else None
    local = not address
    if local:
        clean_stale_ray(run_dir, log)
        tmp = ray_temp_dir(run_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        old_owner = os.environ.get(OWNER_ENV)
        os.environ[OWNER_ENV] = _own_token(run_dir)       # only the processes ray.init starts
        try:
            ray.init(num_cpus=num_cpus, _temp_dir=str(tmp), **kwargs)
        except BaseException:
            _sweep_own(run_dir)
            raise
        finally:
            if old_owner is None:
                os.environ.pop(OWNER_ENV, None)
            else:
                os.environ[OWNER_ENV] = old_owner
    else:
        ray.init(address=address, **kwargs)
    if main:        # SIGTERM = a clean stop: the finally below runs (Ray's own handler does too)
        signal.signal(signal.SIGTERM, _sigterm_exit)
    try:
        yield
    finally:
        try:
            ray.shutdown()
        finally:
            if local:
                _sweep_own(run_dir)
            if main and old_term is not None:
                signal.signal(signal.SIGTERM, old_term)


def _sigterm_exit(signum, frame):
    raise SystemExit(128 + signum)
