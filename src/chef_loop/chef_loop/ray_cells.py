"""Sim cells as Ray actors: a stage's cell session spread over a Ray cluster (`ray_address` set).

`RayCellSession` is a drop-in for chef_loop.cells.CellSession (enter, `run(jobs, on_outcome)`,
exit). On entering it connects to the cluster and starts ceil(cells / cluster.cells_per_worker)
`CellWorker` actors with the SPREAD strategy, each requesting `cpus_per_cell` (and `gpus_per_cell`)
per cell it runs plus `cluster.cell_resources`. A worker is one ordinary CellSession on its node:
its own `chef run sim` graph process in its own ROS domain (reserved on that node), DDS kept on the
host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST), recording into a temporary store local to the node.

Jobs go out in batches of the worker's cell count to whichever worker is free. A batch returns its
outcomes and every episode the worker's recorders published since the last batch, shipped through
Ray's object store (chef_recorder.shipping: per-file sha256, verified and renamed into the run's
store atomically, then catalogued). Shipping instead of a shared filesystem: it needs no NFS
between the nodes, and the store the learners read is written only by this process, one whole
verified episode at a time. An episode a worker recorded but had not shipped when the run was
killed is lost with the worker, which is what resume expects: stages count the episodes in the
run's store and run the missing ones again.

Policy checkpoints the cells need (the `policy` and `trainer_init` stage arguments) travel as
bytes with their sha256 and are verified on the worker before its graph starts; a path on the
head is never assumed to exist on a worker.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from chef_loop.jobs import EpisodeJob, EpisodeOutcome, FleetError

SHIPPED_ARGS = ('policy', 'trainer_init')      # stage arguments that name a checkpoint file
_LOG_TAIL_BYTES = 256 * 1024
_STORE_PREFIX = 'chef-cells-'                  # <tmp>/chef-cells-<worker pid>-<random>: a worker's local store


def _remove_dead_workers_stores() -> None:
    """Local stores of killed workers on this node (their episodes were never shipped: the stage
    that asked for them runs them again)."""
    for d in Path(tempfile.gettempdir()).glob(f'{_STORE_PREFIX}*-*'):
        pid = d.name[len(_STORE_PREFIX):].split('-')[0]
        if pid.isdigit() and not Path(f'/proc/{pid}').exists():
            shutil.rmtree(d, ignore_errors=True)


@dataclass
class ShippedFile:
    name: str
    data: bytes
    sha256: str


@dataclass
class WorkerBatch:
    """What a worker returns for a batch of jobs: outcomes and the episodes published since."""

    outcomes: List[EpisodeOutcome]
    episodes: list                     # chef_recorder.shipping.ShippedEpisode


def ship_file(path: str) -> ShippedFile:
    from chef_recorder.shipping import sha256_bytes
    data = Path(path).read_bytes()
    return ShippedFile(Path(path).name, data, sha256_bytes(data))


class CellWorker:
    """A Ray actor (ray.remote(CellWorker)): one CellSession on the node Ray placed it on."""

    def __init__(self, cells_cfg, log_prefix: str = 'cells'):
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'      # DDS never leaves the node
        import ray
        gpus = ray.get_gpu_ids()
        if gpus:                                   # GPU rendering on the GPU Ray assigned
            os.environ['MUJOCO_GL'] = 'egl'
            os.environ['MUJOCO_EGL_DEVICE_ID'] = str(gpus[0])
        self.cells_cfg = cells_cfg
        _remove_dead_workers_stores()
        self.root = Path(tempfile.mkdtemp(prefix=f'{_STORE_PREFIX}{os.getpid()}-'))
        self.data_dir = self.root / 'data'
        self.log_path = self.root / f'{log_prefix}.graph.log'
        self.session = None
        self.shipped: set = set()

    def where(self) -> Dict[str, Any]:
        import socket

        import ray
        return {'node_id': ray.get_runtime_context().get_node_id(), 'host': socket.gethostname(),
                'pid': os.getpid(), 'cells': self.cells_cfg.cells}

    def open(self, graph_args: Dict[str, Any], files: Dict[str, ShippedFile]) -> None:
        from chef_loop.cells import CellSession
        from chef_recorder.shipping import sha256_bytes
        args = dict(graph_args)
        for key, f in files.items():
            if sha256_bytes(f.data) != f.sha256:
                raise FleetError(f'{key} checkpoint {f.name} arrived damaged (sha256 mismatch)')
            path = self.root / 'checkpoints' / f'{f.sha256[:16]}-{f.name}'
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
            args[key] = str(path)
        session = CellSession(self.cells_cfg, self.data_dir, self.log_path, graph_args=args)
        session.__enter__()                 # stops what it started itself if the cells never come up
        self.session = session

    def run(self, jobs: Sequence[EpisodeJob], record_timeout_s: float = 60.0) -> WorkerBatch:
        outcomes = self.session.run(jobs)
        self._wait_published(outcomes, record_timeout_s)
        return WorkerBatch(outcomes, self._ship_new())

    def close(self) -> Tuple[list, str]:
        """Stop the graph (its exit publishes what a dead recorder left as `recovered`), ship what
        is left, remove the local store; -> (episodes, the graph log's tail)."""
        try:
            if self.session is not None:
                self.session.__exit__(None, None, None)
                self.session = None
            episodes = self._ship_new()
            log = ''
            if self.log_path.is_file():
                with open(self.log_path, 'rb') as f:
                    f.seek(max(0, self.log_path.stat().st_size - _LOG_TAIL_BYTES))
                    log = f.read().decode(errors='replace')
            return episodes, log
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _wait_published(self, outcomes: Sequence[EpisodeOutcome], timeout_s: float) -> None:
        from chef_recorder.layout import DataLayout
        layout = DataLayout(self.data_dir)
        want = [layout.episode_dir(o.cell, o.event.episode_id) for o in outcomes if o.event is not None]
        deadline = time.monotonic() + timeout_s
        while any(not p.is_dir() for p in want) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _ship_new(self) -> list:
        from chef_recorder.layout import DataLayout
        from chef_recorder.shipping import pack_episode
        out = []
        for cell, bag in DataLayout(self.data_dir).iter_bags():
            key = f'{cell}/{bag.name}'
            if key not in self.shipped:
                out.append(pack_episode(bag))
                self.shipped.add(key)
        return out


class RayCellSession:
    """`with RayCellSession(...) as s: s.run(jobs)`: the cells of a stage as Ray actors (module doc)."""

    def __init__(self, cfg, data_dir: Path, log_path: Path, graph_args: Dict[str, Any], run_dir: Path,
                 log: Callable[[str], None] = print):
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.graph_args = dict(graph_args)
        self.run_dir = Path(run_dir)
        self.log = log
        self.workers: list = []
        self.placement: List[Dict[str, Any]] = []
        self.shipped = 0
        self._ray = None
        self._catalog = None

    # --- set-up -----------------------------------------------------------------------------------
    def _worker_cells(self) -> List[int]:
        from chef_loop.cluster import cell_workers
        total, per = self.cfg.cells.cells, self.cfg.cluster.cells_per_worker
        n = cell_workers(total, per)
        return [min(per, total - k * per) for k in range(n)]

    def _options(self, cells: int) -> Dict[str, Any]:
        c = self.cfg.cluster
        opts: Dict[str, Any] = {'num_cpus': c.cpus_per_cell * cells, 'scheduling_strategy': 'SPREAD',
                                'max_restarts': 0}
        if c.gpus_per_cell:
            opts['num_gpus'] = c.gpus_per_cell * cells
        if c.cell_resources:
            opts['resources'] = dict(c.cell_resources)
        return opts

    def __enter__(self) -> 'RayCellSession':
        from chef_loop.ray_session import ray_session
        from chef_recorder.catalog import Catalog
        from chef_recorder.layout import DataLayout
        from chef_recorder.shipping import clear_incoming
        self.layout = DataLayout(self.data_dir)
        left = clear_incoming(self.layout)
        if left:
            self.log(f'  removed {left} interrupted shipment(s) from {self.layout.episodes}')
        self._catalog = Catalog(self.layout)
        self._t0 = time.monotonic()
        self._ray = ray_session(self.run_dir, num_cpus=0, address=self.cfg.ray_address, log=self.log)
        self._ray.__enter__()
        try:
            self._start_workers()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_workers(self) -> None:
        import ray
        files = {k: ship_file(v) for k, v in self.graph_args.items()
                 if k in SHIPPED_ARGS and isinstance(v, str) and v and Path(v).is_file()}
        files_ref = ray.put(files)
        actor = ray.remote(CellWorker)
        prefix = self.log_path.name.replace('.graph.log', '')
        for k, n in enumerate(self._worker_cells()):
            cells = dataclasses.replace(self.cfg.cells, cells=n)
            self.workers.append(actor.options(**self._options(n)).remote(cells, f'{prefix}.w{k}'))
        self.log(f'  {len(self.workers)} cell worker(s) on Ray ({self.cfg.ray_address}): '
                 f'{self._worker_cells()} cell(s) each')
        self.placement = self._get([w.where.remote() for w in self.workers], 'start')
        for k, p in enumerate(self.placement):
            p.update(worker=k, episodes=0)
        t_up = time.monotonic()
        self._get([w.open.remote(self.graph_args, files_ref) for w in self.workers], 'bring up its cells')
        self.log(f'  cell workers placed in {t_up - self._t0:.1f} s, their cells ready in '
                 f'{time.monotonic() - t_up:.1f} s')

    def _get(self, refs, what: str):
        import ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()
            raise FleetError(f'a cell worker failed to {what}: {first[-1] if first else type(exc).__name__}; '
                             f'graph logs: {self.log_path}') from None

    # --- episodes ---------------------------------------------------------------------------------
    def _ingest(self, episodes: list, worker: int) -> None:
        from chef_recorder.shipping import ingest_episode
        for ep in episodes:
            if ingest_episode(self.layout, ep, self._catalog) is not None:
                self.shipped += 1
                self.placement[worker]['episodes'] += 1

    def run(self, jobs: Sequence[EpisodeJob], on_outcome: Optional[Callable[[EpisodeOutcome], None]] = None
            ) -> List[EpisodeOutcome]:
        import ray
        queue = list(jobs)
        sizes = self._worker_cells()
        pending: Dict[Any, int] = {}
        outcomes: List[EpisodeOutcome] = []

        def submit(k: int) -> None:
            batch, queue[:] = queue[:sizes[k]], queue[sizes[k]:]
            pending[self.workers[k].run.remote(batch)] = k
        for k in range(len(self.workers)):
            if queue:
                submit(k)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            result: WorkerBatch = self._get(ready[0], 'run episodes')
            self._ingest(result.episodes, k)
            for o in result.outcomes:
                outcomes.append(o)
                if on_outcome:
                    on_outcome(o)
            if queue:
                submit(k)
        return outcomes

    def __exit__(self, *exc) -> None:
        import ray
        t_close = time.monotonic()
        try:
            if self.workers:
                closed = [w.close.remote() for w in self.workers]
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.log_path, 'a') as log:
                    for k, ref in enumerate(closed):
                        try:
                            episodes, text = ray.get(ref, timeout=120)
                        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as err:
                            log.write(f'[chef loop] cell worker {k}: no clean stop ({type(err).__name__})\n')
                            continue
                        self._ingest(episodes, k)
                        where = self.placement[k] if k < len(self.placement) else {}
                        log.write(f'===== cell worker {k} on node {where.get("node_id")} '
                                  f'({where.get("host")}) =====\n{text}\n')
                for w in self.workers:
                    ray.kill(w)
                self.log(f'  cell workers stopped in {time.monotonic() - t_close:.1f} s; {self.shipped} '
                         f'episode(s) shipped to {self.layout.episodes}')
        finally:
            self.workers = []
            if self._catalog is not None:
                self._catalog.close()
            if self._ray is not None:
                self._ray.__exit__(None, None, None)
                self._ray = None
