"""`chef run`: start a node graph, one process per node, where `ros2 launch` is not installed.

Reads the same graph description (config/graphs/*.yaml) as the launch files, so the two cannot
drift. Supervision uses asyncio subprocesses from the standard library: we looked at honcho
(Procfile runner) and circus/supervisor, but none has the launch semantics we need (a *required*
node's exit stops the graph with its exit code; an optional node may die alone), and the stdlib
keeps the dependency surface at zero.

Behaviour:
  * every node's stdout/stderr is line-prefixed with its fully qualified name (and kept in
    `<log_dir>/<node>.log` when a log directory is given);
  * SIGINT/SIGTERM to the runner -> SIGINT to every node, SIGTERM after `grace_s`, SIGKILL after
    twice that; exit code 0 when every node stopped cleanly;
  * a required node that exits (for any reason) stops the graph; if it failed, the runner prints
    which node and how, and exits non-zero;
  * ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID are set unless already set;
  * nodes die with the runner: even a SIGKILLed runner leaves no orphans (prctl PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO

from chef_contract.graph import NodeSpec

_COLOURS = ('36', '32', '33', '35', '34', '91', '92', '93', '94', '95', '96')


class GraphError(RuntimeError):
    """The graph cannot start (missing executable, bad description)."""


def resolve_executable(spec: NodeSpec) -> str:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        prefix = Path(get_package_prefix(spec.package))
    except PackageNotFoundError:
        raise GraphError(f'node {spec.fqn}: package {spec.package!r} is not installed '
                         f'(did the workspace build? is install/setup.bash sourced?)') from None
    path = prefix / 'lib' / spec.package / spec.executable
    if not path.exists():
        raise GraphError(f'node {spec.fqn}: package {spec.package!r} has no executable '
                         f'{spec.executable!r} (looked in {path.parent})')
    return str(path)


def node_command(spec: NodeSpec) -> List[str]:
    return [resolve_executable(spec), *spec.arguments, *spec.ros_args()]


def graph_env(domain_id: Optional[int] = None, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(base if base is not None else os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    env.setdefault('ROS_DOMAIN_ID', '42')
    env.setdefault('PYTHONUNBUFFERED', '1')
    env.setdefault('MUJOCO_GL', 'egl')
    env.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
    return env


@dataclass
class NodeResult:
    fqn: str
    required: bool
    returncode: Optional[int] = None
    started: float = 0.0
    ended: float = 0.0


@dataclass
class GraphRun:
    """Outcome of `run_graph`."""

    exit_code: int
    reason: str
    nodes: Dict[str, NodeResult] = field(default_factory=dict)


def _describe_rc(rc: int) -> str:
    if rc < 0:
        try:
            return f'killed by {signal.Signals(-rc).name}'
        except ValueError:
            return f'killed by signal {-rc}'
    return f'exit code {rc}'


class GraphRunner:
    """Supervises the processes of one resolved graph (use `run_graph` for the simple case)."""

    def __init__(self, specs: Sequence[NodeSpec], env: Dict[str, str], log_dir: Optional[Path] = None,
                 out: TextIO = sys.stdout, grace_s: float = 10.0, colour: Optional[bool] = None):
        self.specs = list(specs)
        self.env = env
        self.log_dir = Path(log_dir) if log_dir else None
        self.out = out
        self.grace_s = grace_s
        self.colour = out.isatty() if colour is None else colour
        self.procs: Dict[str, asyncio.subprocess.Process] = {}
        self.results: Dict[str, NodeResult] = {}
        self._stop = asyncio.Event()
        self._reason = ''
        self._exit_code = 0
        self._width = max((len(s.fqn) for s in self.specs), default=4)

    def _print(self, fqn: str, idx: int, line: str) -> None:
        prefix = f'[{fqn}]'.ljust(self._width + 2)
        if self.colour:
            prefix = f'\033[{_COLOURS[idx % len(_COLOURS)]}m{prefix}\033[0m'
        self.out.write(f'{prefix} {line}\n')
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(f'[chef run] {text}\n')
        self.out.flush()

    async def _pump(self, spec: NodeSpec, idx: int, proc: asyncio.subprocess.Process) -> None:
        log = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / (spec.fqn.strip('/').replace('/', '.') + '.log'), 'a')
        try:
            assert proc.stdout is not None
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode(errors='replace').rstrip('\n')
                self._print(spec.fqn, idx, line)
                if log:
                    log.write(line + '\n')
                    log.flush()
        finally:
            if log:
                log.close()

    async def _watch(self, spec: NodeSpec, idx: int) -> None:
        proc = self.procs[spec.fqn]
        pump = asyncio.create_task(self._pump(spec, idx, proc))
        rc = await proc.wait()
        await pump
        res = self.results[spec.fqn]
        res.returncode, res.ended = rc, time.monotonic()
        if self._stop.is_set():
            return
        if spec.required:
            if rc == 0:
                self._reason = f'required node {spec.fqn} finished (exit code 0); stopping the graph'
            else:
                self._reason = (f'required node {spec.fqn} failed ({_describe_rc(rc)}); '
                                f'stopping the graph. See its output above'
                                + (f' or {self.log_dir}' if self.log_dir else '') + '.')
                self._exit_code = rc if rc > 0 else 128 + (-rc)
            self.note(self._reason)
            self._stop.set()
        else:
            self.note(f'optional node {spec.fqn} exited ({_describe_rc(rc)}); the graph keeps running')

    async def _shutdown(self) -> None:
        alive = [p for p in self.procs.values() if p.returncode is None]
        for p in alive:
            _signal(p, signal.SIGINT)
        for sig, wait in ((signal.SIGTERM, self.grace_s), (signal.SIGKILL, self.grace_s)):
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(p.returncode is None for p in alive):
                await asyncio.sleep(0.05)
            still = [p for p in alive if p.returncode is None]
            if not still:
                break
            self.note(f'{len(still)} node(s) still running after {wait:.0f} s; sending {sig.name}')
            for p in still:
                _signal(p, sig)

    async def run(self, duration_s: Optional[float] = None) -> GraphRun:
        loop = asyncio.get_running_loop()
        commands = [(s, node_command(s)) for s in self.specs]    # fail before starting anything
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        watchers = []
        try:
            for idx, (spec, cmd) in enumerate(commands):
                env = dict(self.env, **spec.env)
                proc = await asyncio.create_subprocess_exec(
                    *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
                    preexec_fn=die_with_parent)
                self.procs[spec.fqn] = proc
                self.results[spec.fqn] = NodeResult(spec.fqn, spec.required, started=time.monotonic())
                watchers.append(asyncio.create_task(self._watch(spec, idx)))
            self.note(f'started {len(commands)} node(s) on ROS_DOMAIN_ID={self.env.get("ROS_DOMAIN_ID")}'
                      ' - Ctrl-C stops the graph')
            if duration_s is not None:
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=duration_s)
                except asyncio.TimeoutError:
                    self._reason = f'duration of {duration_s:g} s reached'
                    self._stop.set()
            else:
                await self._stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self._shutdown()
            if watchers:
                await asyncio.gather(*watchers, return_exceptions=True)
        if self._exit_code == 0:
            bad = {k: r.returncode for k, r in self.results.items()
                   if r.returncode not in (0, None, -signal.SIGINT)}
            if bad:
                self._exit_code = 1
                self.note('nodes that did not stop cleanly: '
                          + ', '.join(f'{k} ({_describe_rc(rc)})' for k, rc in bad.items()))
        return GraphRun(self._exit_code, self._reason, dict(self.results))

    def _on_signal(self, sig) -> None:
        if not self._stop.is_set():
            self._reason = f'received {signal.Signals(sig).name}'
            self.note(f'{self._reason}; stopping {len(self.procs)} node(s)')
            self._stop.set()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """preexec_fn: the kernel sends `sig` to this child when its parent dies (Linux prctl).

    A runner killed with SIGKILL then cannot leave orphaned nodes behind: they get SIGTERM, which
    the node idiom treats as a clean stop. A no-op where prctl is unavailable.
    """
    try:
        import ctypes
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)     # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def run_graph(specs: Sequence[NodeSpec], domain_id: Optional[int] = None, log_dir: Optional[Path] = None,
              duration_s: Optional[float] = None, out: TextIO = sys.stdout, grace_s: float = 10.0) -> GraphRun:
    """Run resolved node specs until Ctrl-C, a required node's exit, or `duration_s`."""
    runner = GraphRunner(specs, graph_env(domain_id), log_dir=log_dir, out=out, grace_s=grace_s)
    return asyncio.run(runner.run(duration_s))
