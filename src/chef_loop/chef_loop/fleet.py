"""Run episodes on a fleet of cells over ROS: the CHEF loop's hands.

`CellFleet` is an rclpy node that talks to every cell through the contract only:
  * waits until each cell's policy is ready (latched policy/info with a loaded policy);
  * hands out episode jobs (triplet, seed, tags) to idle cells with EpisodeCommand(op='start');
  * matches start/end/abort events to jobs by the request id it puts into the tags (event history
    is transient-local, so old events of earlier requests are ignored by construction);
  * retries an aborted or timed-out episode once on another start, and reports what happened;
  * publishes its progress (FleetProgress on /chef_loop/progress: jobs done / wanted) for `chef status`.
The same class drives real cells (their episode manager publishes the same events). The job and
outcome types are ROS-free (chef_loop.jobs).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Callable, Dict, List, Optional, Sequence

from rclpy.node import Node
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.events import EpisodeCommand, EpisodeEvent, EventFormatError
from chef_contract.payloads import FleetProgress, PolicyInfo
from chef_contract.ros import create_contract_publisher, qos
from chef_loop.jobs import EpisodeJob, EpisodeOutcome, FleetError

__all__ = ['CellFleet', 'EpisodeJob', 'EpisodeOutcome', 'FleetError']


class CellFleet(Node):
    def __init__(self, cells: Sequence[str], **kwargs):
        super().__init__(f'chef_fleet_{uuid.uuid4().hex[:6]}', **kwargs)
        self.cells = list(cells)
        self.cmd_pubs = {c: self.create_publisher(String, f'/{c}/{T.EPISODE_COMMAND}', qos('event', 'pub'))
                         for c in self.cells}
        self.policy_info: Dict[str, PolicyInfo] = {}
        self.events: List[EpisodeEvent] = []
        for c in self.cells:
            self.create_subscription(String, f'/{c}/{T.EPISODE_EVENTS}',
                                     lambda m, c=c: self._on_event(c, m), qos('event', 'sub'))
            self.create_subscription(String, f'/{c}/{T.POLICY_INFO}',
                                     lambda m, c=c: self._on_info(c, m), qos('latched', 'sub'))
        self._by_request: Dict[str, List[EpisodeEvent]] = {}
        self._progress_pub = create_contract_publisher(self, T.FLEET_PROGRESS)

    def _publish_progress(self, jobs: Sequence[EpisodeJob], outcomes: Sequence[EpisodeOutcome],
                          busy: Dict[str, tuple]) -> None:
        tags = jobs[0].tags if jobs else {}
        self._progress_pub.publish(String(data=FleetProgress(
            jobs=len(jobs), done=len(outcomes), succeeded=sum(o.success for o in outcomes),
            failed=sum(not o.ok for o in outcomes), running={c: j.triplet for c, (j, _) in busy.items()},
            stage=str(tags.get('stage', '')), iteration=tags.get('iteration'),
            label=str(tags.get('candidate') or tags.get('data_source') or ''), pid=os.getpid(),
            stamp_unix=time.time()).to_json()))

    def _on_event(self, cell: str, msg: String) -> None:
        try:
            ev = EpisodeEvent.from_json(msg.data)
        except EventFormatError as exc:
            self.get_logger().warning(f'{cell}: malformed episode event ignored: {exc}')
            return
        rid = ev.tags.get('request_id') if isinstance(ev.tags, dict) else None
        if rid:
            self._by_request.setdefault(rid, []).append(ev)

    def _on_info(self, cell: str, msg: String) -> None:
        try:
            self.policy_info[cell] = PolicyInfo.from_json(msg.data)
        except EventFormatError as exc:
            self.get_logger().warning(f'{cell}: malformed policy/info ignored: {exc}')

    # ---------------------------------------------------------------------------------------------
    def _spin(self, executor, seconds: float) -> None:
        executor.spin_once(timeout_sec=seconds)

    def wait_ready(self, executor, timeout_s: float, policy_ready: Callable[[PolicyInfo], bool] = None,
                   alive: Callable[[], bool] = lambda: True) -> None:
        """Block until every cell's command topic has a subscriber and its policy reports ready."""
        policy_ready = policy_ready or (lambda info: info.ready)
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [c for c in self.cells
                       if self.cmd_pubs[c].get_subscription_count() == 0
                       or c not in self.policy_info or not policy_ready(self.policy_info[c])]
            if not missing:
                return
            if not alive():
                raise FleetError('the cell graph stopped while the loop waited for it (see its log)')
            if time.monotonic() > deadline:
                detail = {c: self.policy_info.get(c, 'no policy/info yet') for c in missing}
                raise FleetError(f'cells not ready after {timeout_s:.0f} s: {detail}')
            self._spin(executor, 0.1)

    def run(self, executor, jobs: Sequence[EpisodeJob], episode_timeout_s: float, max_attempts: int = 2,
            on_outcome: Optional[Callable[[EpisodeOutcome], None]] = None,
            alive: Callable[[], bool] = lambda: True) -> List[EpisodeOutcome]:
        """Run `jobs` over the cells (one episode per cell at a time); returns one outcome per job."""
        queue = list(jobs)
        busy: Dict[str, tuple] = {}                  # cell -> (job, started monotonic)
        outcomes: List[EpisodeOutcome] = []
        while queue or busy:
            if not alive():
                raise FleetError('the cell graph stopped during the episodes (see its log)')
            for cell in self.cells:
                if cell not in busy and queue:
                    job = queue.pop(0)
                    job.attempts += 1
                    job.request_id = uuid.uuid4().hex
                    tags = dict(job.tags, request_id=job.request_id)
                    cmd = EpisodeCommand(op='start', triplet=job.triplet, seed=job.seed, tags=tags,
                                         request_id=job.request_id)
                    self.cmd_pubs[cell].publish(String(data=cmd.to_json()))
                    busy[cell] = (job, time.monotonic())
                    self._publish_progress(jobs, outcomes, busy)
            self._spin(executor, 0.05)
            for cell, (job, t0) in list(busy.items()):
                evs = self._by_request.get(job.request_id, [])
                final = next((e for e in evs if e.event in ('end', 'abort')), None)
                timed_out = time.monotonic() - t0 > episode_timeout_s
                if final is None and not timed_out:
                    continue
                del busy[cell]
                if final is not None and final.event == 'end':
                    out = EpisodeOutcome(job, cell, final, True)
                else:
                    reason = final.reason if final is not None else f'no end event in {episode_timeout_s:.0f} s'
                    if timed_out and final is None:
                        self.cmd_pubs[cell].publish(String(data=EpisodeCommand(op='stop').to_json()))
                    if job.attempts < max_attempts:
                        self.get_logger().warning(f'{cell}: episode for {job.triplet} seed {job.seed} '
                                                  f'failed ({reason}); retrying')
                        queue.insert(0, job)
                        continue
                    out = EpisodeOutcome(job, cell, final, False, reason)
                outcomes.append(out)
                self._publish_progress(jobs, outcomes, busy)
                if on_outcome:
                    on_outcome(out)
        return outcomes
