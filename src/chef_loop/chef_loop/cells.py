"""A running set of cells for one CHEF stage: the backend's graphs (`chef run sim ...`, or one
`chef run real cell:=i ...` per cell, chef_loop.backends) + a CellFleet.

Each session gets its own ROS domain (drawn from `cells.domain_range`, or $CHEF_DOMAIN_RANGE), so
nodes of an earlier (possibly crashed) session cannot answer its commands, and its own log file.
The graph process dies with the loop (PDEATHSIG), and a session always stops its graph on exit,
also on errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from chef_bringup.runner import die_with_parent
from chef_contract.domains import domain_range, release_domain_id, reserve_domain_id
from chef_loop.config import CellsConfig
from chef_loop.jobs import EpisodeJob, EpisodeOutcome, FleetError


def _graph_preexec() -> None:
    """The graph dies with the loop, and stops on the SIGINT `__exit__` sends even when this thread
    blocks or ignores signals (mask and ignored signals survive exec: a Ray actor's task thread,
    `cmd &` in a script)."""
    die_with_parent()
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CellSession:
    """Context manager: start the backend's graphs with `graph_args`, wait for the cells, run episodes."""

    def __init__(self, cells: CellsConfig, data_dir: Path, log_path: Path,
                 graph_args: Optional[Dict[str, Any]] = None, policy_ready=None):
        from chef_loop.backends import make_backend
        self.cells_cfg = cells
        self.backend = make_backend(cells)
        self.names = [f'cell{i}' for i in range(cells.cells)]
        self.args = self.backend.base_args(data_dir)
        self.args.update(graph_args or {})
        self.data_dir = str(Path(data_dir).resolve())
        self.log_path = Path(log_path)
        self.policy_ready = policy_ready
        self.procs: List[subprocess.Popen] = []
        self.domain: Optional[int] = None
        self._ctx = None
        self._executor = None
        self.fleet = None                  # chef_loop.fleet.CellFleet (rclpy) while entered

    def __enter__(self) -> 'CellSession':
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from chef_loop.fleet import CellFleet
        self.domain = reserve_domain_id(domain_range(self.cells_cfg.domain_range))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'a')
        env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
        try:
            for cmd in self.backend.commands(self.domain, self.args):
                self._log.write('+ ' + ' '.join(cmd) + '\n')
                self._log.flush()
                self.procs.append(subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                                   stdin=subprocess.DEVNULL, preexec_fn=_graph_preexec))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        try:
            self._ctx = rclpy.Context()
            rclpy.init(context=self._ctx, domain_id=self.domain,
                       signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
            self.fleet = CellFleet(self.names, context=self._ctx)
            self._executor = SingleThreadedExecutor(context=self._ctx)
            self._executor.add_node(self.fleet)
            self.fleet.wait_ready(self._executor, self.cells_cfg.start_timeout_s,
                                  policy_ready=self.policy_ready, alive=self.alive)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def run(self, jobs: Sequence[EpisodeJob], on_outcome: Optional[Callable[[EpisodeOutcome], None]] = None
            ) -> List[EpisodeOutcome]:
        try:
            return self.fleet.run(self._executor, jobs, self.cells_cfg.episode_timeout_s,
                                  on_outcome=on_outcome, alive=self.alive)
        except FleetError as exc:
            raise FleetError(f'{exc}; graph log: {self.log_path}') from None

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.shutdown()
        if self.fleet is not None:
            try:
                self.fleet.destroy_node()
            except Exception:  # noqa: BLE001
                pass
        if self._ctx is not None:
            import rclpy
            rclpy.try_shutdown(context=self._ctx)
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.domain is not None:
            release_domain_id(self.domain)
        if hasattr(self, '_log'):
            self._recover_partials()
            self._log.close()

    def _recover_partials(self) -> None:
        """Episodes a dead recorder left half-written (its death stopped the graph and the stage):
        published now as `recovered`, not complete, with every readable tick."""
        from chef_recorder.integrity import repair_crashed_partials
        from chef_recorder.layout import DataLayout
        layout = DataLayout(self.data_dir)
        for partial, out, error in repair_crashed_partials(layout, self.names):
            self._log.write(f'[chef loop] partial episode {layout.relative(partial)} of a dead recorder -> '
                            f'{error or (layout.relative(out) if out else "nothing recoverable")}\n')
