"""Run CPU-heavy jobs (trainings, fitted Q evaluations, policy evaluations) in fresh processes.

One helper for every fan-out of the loop and the benches, built on concurrent.futures, not
multiprocessing.Pool: a worker that dies raises BrokenProcessPool in the caller, where
Pool.terminate() hung for good on the large run of 2026-12-07 (both workers had exited; its
_help_stuff_finish waited on the task queue's lock). Workers are spawned (no forked torch or MuJoCo
state), each serves one job (`max_tasks_per_child=1`: a training's memory is returned at once), and
each gets SIGTERM when its parent dies (a killed loop or bench leaves no worker training on).
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any, Callable, List, Sequence


def _init_worker() -> None:
    from chef_bringup.runner import die_with_parent
    die_with_parent()


def process_map(fn: Callable[..., Any], jobs: Sequence[Sequence[Any]], workers: int) -> List[Any]:
    """[fn(*job) for job in jobs], in order, in at most `workers` spawned processes at a time.

    `fn` must be importable at module level (spawn pickles it by name). With `workers` <= 1 or one
    job it runs in this process. A job's exception is re-raised here; so is a dead worker
    (concurrent.futures.process.BrokenProcessPool).
    """
    jobs = [tuple(j) for j in jobs]
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*j) for j in jobs]
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context('spawn'),
                             initializer=_init_worker, max_tasks_per_child=1) as pool:
        futures = [pool.submit(fn, *j) for j in jobs]
        return [f.result() for f in futures]
