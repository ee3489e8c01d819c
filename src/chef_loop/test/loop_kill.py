"""What the kill tests of `chef loop` and its stages share (issue 16): start a CHEF command on the
tiny config, watch its process tree, kill it as a crash would, and read back what it left (state.json,
the episode store, partial episodes, training checkpoints and metrics).

Used by test_explore_kill.py, test_loop_kill.py and test_loop_e2e.py; `record_synthetic_episodes`
(chef_trainer's test helper) fills a store without ROS.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'chef_trainer' / 'test'))
from recorded import record_synthetic_episodes  # noqa: E402,F401  (chef_trainer's: real recorder core)

TINY = Path(__file__).with_name('tiny.yaml')
KILL_GRACE_S = 30.0          # a killed or finished run's processes must be gone by then (issue 16)
_log_ids = itertools.count()


class ChefCommand:
    """`chef <args> --config tiny.yaml --set runs_dir=<runs_dir> <sets>` in its own process group,
    its output in a log file next to `runs_dir` (no pipe to fill up), and every process of its tree
    remembered (pid, start time) while the test polls it, so what it leaves behind can be checked
    even after a kill has orphaned its children."""

    def __init__(self, args: Sequence[str], runs_dir: Path, sets: Sequence[str] = (), ros: bool = False):
        if ros:      # the loop's own node (the cell sessions reserve their own domains)
            from chef_contract.testing import ros_env, unique_domain_id
            env = ros_env(unique_domain_id())
        else:
            env = dict(os.environ, PYTHONUNBUFFERED='1')
        self.cmd = [sys.executable, '-m', 'chef_bringup.cli', *args, '--config', str(TINY),
                    '--set', f'runs_dir={runs_dir}', *(x for s in sets for x in ('--set', s)), '--no-progress']
        self.log_path = Path(runs_dir).parent / f'chef-{args[0]}-{next(_log_ids)}.log'
        with open(self.log_path, 'w') as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.seen: Dict[int, float] = {}         # pid -> create time, of every process of the tree seen
        self.watch()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self, tail: int = 4000) -> str:
        text = self.log_path.read_text(errors='replace') if self.log_path.is_file() else ''
        return text[-tail:] if tail else text

    def watch(self) -> None:
        """Remember the processes of the tree now (nodes, Ray, workers)."""
        import psutil
        try:
            root = psutil.Process(self.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                self.seen.setdefault(p.pid, p.create_time())
            except psutil.NoSuchProcess:
                pass

    def wait_for(self, cond: Callable[[], bool], timeout_s: float, period_s: float = 0.05) -> bool:
        """Poll `cond` (watching the tree) until it holds; False on timeout or if the command exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.watch()
            if cond():
                return True
            if self.proc.poll() is not None:
                return bool(cond())
            time.sleep(period_s)
        return False

    def kill(self, victim: str = 'group') -> None:
        """SIGKILL: 'driver' the command's process alone (its children are orphaned); 'group' its
        process group, as `kill -9 -PGID` does (the loop, the cell graph's runner, Ray's head; the
        nodes run in sessions of their own and get SIGTERM from their dying runner, so the recorder
        still closes its episode); 'tree' every process of the run at once (a power cut): all are
        frozen (SIGSTOP) before any is killed, so none reacts to another's death - the recorder
        leaves a crashed partial, the loop repairs nothing on its way out."""
        import psutil
        self.watch()
        if victim == 'tree':
            procs = []
            for pid, created in self.seen.items():
                try:
                    p = psutil.Process(pid)
                    if p.create_time() == created:
                        p.suspend()
                        procs.append(p)
                except psutil.NoSuchProcess:
                    pass
            for p in procs:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        if victim == 'driver':
            os.kill(self.pid, signal.SIGKILL)
        else:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:      # 'tree': nothing of the group was left
                pass
        self.proc.wait()

    def finish(self, timeout_s: float) -> Tuple[int, str]:
        """Wait for the command to end (watching its tree); (return code, whole output)."""
        self.wait_for(lambda: self.proc.poll() is not None, timeout_s, period_s=0.5)
        if self.proc.poll() is None:
            self.kill('group')
            raise AssertionError(f'{" ".join(self.cmd[2:4])} did not end in {timeout_s:.0f} s:\n'
                                 f'{self.output()}')
        return self.proc.returncode, self.output(tail=0)

    def alive(self) -> List[str]:
        """Processes of the tree seen so far that still run (zombies count as gone)."""
        import psutil
        out = []
        for pid, created in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f'{pid} {" ".join(p.cmdline())[:160]}')
            except psutil.NoSuchProcess:
                pass
        return out


def assert_no_process_left(*commands: ChefCommand, grace_s: float = KILL_GRACE_S) -> None:
    """No process any of `commands` started (the killed runs' orphans included) runs `grace_s` on."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(c.alive() for c in commands):
        time.sleep(0.5)
    left = [p for c in commands for p in c.alive()]
    assert not left, f'{len(left)} process(es) left behind:\n' + '\n'.join(left)


# --- what a run left behind ----------------------------------------------------------------------
def state(run_dir: Path) -> dict:
    p = Path(run_dir) / 'state.json'
    return json.loads(p.read_text()) if p.is_file() else {}


def stage_statuses(run_dir: Path, iteration: int = 0) -> Dict[str, str]:
    return {s: v.get('status') for s, v in state(run_dir).get('iterations', {}).get(str(iteration), {}).items()}


def latest_step(train_dir: Path) -> Optional[int]:
    """Update count of a training run directory's newest checkpoint (None: none yet)."""
    p = Path(train_dir) / 'latest.json'
    return json.loads(p.read_text())['step'] if p.is_file() else None


def metrics_steps(train_dir: Path) -> List[int]:
    with open(Path(train_dir) / 'metrics.csv', newline='') as f:
        return [int(r['step']) for r in csv.DictReader(f)]


def catalog(data_dir: Path) -> list:
    """Every catalogued episode, complete or not (the catalog synced with the bags on disk)."""
    from chef_recorder.dataset import Dataset
    return Dataset(data_dir).query(complete=None)


def ended(records) -> list:
    """Episodes that ran to their end (what a stage's quota and evaluation count)."""
    return [r for r in records if r.metadata.get('status') == 'end']


def episode_key(record) -> tuple:
    """What makes an episode of a stage the one the stage asked for: a second ended episode with the
    same key is a duplicate."""
    m = record.metadata
    t = m.get('tags') or {}
    return (m.get('stage'), m.get('iteration'), t.get('data_source'), t.get('candidate'), m.get('triplet'),
            m.get('seed'))


def published(data_dir: Path) -> List[str]:
    """Ids of the episodes published on disk (closed, checksummed bags), without reading them."""
    return sorted(p.name for p in Path(data_dir).glob('episodes/*/*') if p.is_dir() and not p.name.startswith('.'))


def partial_dirs(data_dir: Path) -> List[Path]:
    """Episodes still under their temporary name (being recorded, or left by a dead recorder)."""
    return sorted(p for p in Path(data_dir).glob('episodes/*/.partial/*') if p.is_dir())


def recording(data_dir: Path, min_bytes: int) -> List[str]:
    """Ids of partial episodes with at least `min_bytes` of MCAP handed to the kernel: an episode
    well under way, so a kill now cuts it in the middle."""
    out = []
    for d in partial_dirs(data_dir):
        try:
            if sum(f.stat().st_size for f in d.glob('*.mcap')) >= min_bytes:
                out.append(d.name)
        except OSError:             # renamed meanwhile: it was published
            pass
    return out


def quarantined(data_dir: Path) -> List[str]:
    """Episode ids with an original in a .quarantine directory (`<id>.<kind>-<ns>`)."""
    return sorted(p.name.split('.')[0] for p in Path(data_dir).glob('episodes/*/.quarantine/*'))


def data_ls(data_dir: Path) -> str:
    """`chef data ls --all` as a user reads it."""
    out = subprocess.run([sys.executable, '-m', 'chef_bringup.cli', 'data', 'ls', '--all', '--data-dir',
                          str(data_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout
