"""The thin rclpy side of `chef status`: one watcher node per ROS domain that finds the cells on it and
feeds their contract messages into chef_loop.status_model's CellTrackers.

A cell is a namespace with a publisher on `<ns>/episode/events` (sim bridge or real episode manager);
the watcher looks for new ones every `DISCOVERY_PERIOD_S` and marks a cell offline when that publisher
is gone. Per cell it subscribes to episode/events (transient-local: the recent history arrives at
once), policy/step_info, joint_states (raw: only the arrival time is used, for the tick rate),
recorder/status, safety/status and policy/info; per domain to the loop's /chef_loop/progress.
Each watcher spins its own rclpy context in a background thread; `views()` and `progress()` are
safe to call from another thread.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Callable, Dict, List, Optional

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from chef_contract import topics as T
from chef_contract.events import EpisodeEvent, EventFormatError
from chef_contract.payloads import FleetProgress, PolicyInfo, RecorderStatus, SafetyStatus, StepInfo
from chef_contract.ros import msg_class, qos
from chef_loop.status_model import CellTracker, CellView

DISCOVERY_PERIOD_S = 1.0
_EVENTS_SUFFIX = '/' + T.EPISODE_EVENTS


class DomainWatcher(Node):
    """Watches every cell of the domain its context was initialised on."""

    def __init__(self, domain: int, **kwargs):
        super().__init__(f'chef_status_{uuid.uuid4().hex[:6]}', **kwargs)
        self.domain = domain
        self.lock = threading.Lock()
        self.trackers: Dict[str, CellTracker] = {}
        self.fleet: Optional[FleetProgress] = None
        self._seen_publisher = set()
        self._string = msg_class('std_msgs/msg/String')
        self.create_subscription(self._string, T.FLEET_PROGRESS, self._on_progress,
                                 qos(T.topic(T.FLEET_PROGRESS).qos, 'sub'))
        self.create_timer(DISCOVERY_PERIOD_S, self.discover)

    # --- discovery --------------------------------------------------------------------------------
    def cell_namespaces(self) -> List[str]:
        return sorted(name[:-len(_EVENTS_SUFFIX)].lstrip('/') for name, _ in self.get_topic_names_and_types()
                      if name.endswith(_EVENTS_SUFFIX) and name.count('/') == 3)

    def discover(self) -> None:
        for cell in self.cell_namespaces():
            if cell not in self.trackers:
                self._watch(cell)
        for cell, tracker in self.trackers.items():
            # the graph cache can lag behind the data by seconds: offline only once a publisher seen is gone
            publishers = self.count_publishers(f'/{cell}/{T.EPISODE_EVENTS}')
            if publishers:
                self._seen_publisher.add(cell)
            with self.lock:
                tracker.online = bool(publishers) or cell not in self._seen_publisher

    def _watch(self, cell: str) -> None:
        tracker = CellTracker(cell, self.domain)
        with self.lock:
            self.trackers[cell] = tracker

        def sub(name: str, handler: Callable, parse=None, raw: bool = False) -> None:
            t = T.topic(name)

            def cb(msg):
                now = time.time()
                try:
                    value = parse(msg.data) if parse is not None else None
                except (EventFormatError, ValueError) as exc:
                    self.get_logger().warning(f'{cell}/{name}: ignored: {exc}')
                    return
                with self.lock:
                    handler(value, now) if parse is not None else handler(now)
            self.create_subscription(msg_class(t.msg_type), f'/{cell}/{name}', cb, qos(t.qos, 'sub'), raw=raw)

        sub(T.EPISODE_EVENTS, tracker.on_event, EpisodeEvent.from_json)
        sub(T.POLICY_STEP, tracker.on_step, StepInfo.from_json)
        sub(T.RECORDER_STATUS, tracker.on_recorder, RecorderStatus.from_json)
        sub(T.POLICY_INFO, tracker.on_policy, PolicyInfo.from_json)
        sub(T.SAFETY_STATUS, tracker.on_safety, lambda data: SafetyStatus.from_json(data).state)
        sub(T.JOINT_STATES, tracker.on_tick, raw=True)

    def _on_progress(self, msg) -> None:
        try:
            progress = FleetProgress.from_json(msg.data)
        except EventFormatError as exc:
            self.get_logger().warning(f'{T.FLEET_PROGRESS}: ignored: {exc}')
            return
        with self.lock:
            self.fleet = progress

    # --- read from any thread ---------------------------------------------------------------------
    def views(self, now: float) -> List[CellView]:
        with self.lock:
            return [self.trackers[c].view(now) for c in sorted(self.trackers)]

    def progress(self) -> Optional[FleetProgress]:
        with self.lock:
            return self.fleet


class FleetWatch:
    """Watchers on a set of domains, each in its own rclpy context and spin thread. `watch(domains)`
    starts the new ones and ends those no longer wanted (the loop takes a new domain per session);
    `close()` ends all."""

    def __init__(self, domains=()):
        self._parts: Dict[int, tuple] = {}
        self.watch(domains)

    @property
    def domains(self) -> List[int]:
        return sorted(self._parts)

    def watch(self, domains) -> None:
        wanted = set(domains)
        for d in [d for d in self._parts if d not in wanted]:
            self._end(self._parts.pop(d))
        for d in sorted(wanted - set(self._parts)):
            ctx = rclpy.Context()
            rclpy.init(context=ctx, domain_id=d, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
            node = DomainWatcher(d, context=ctx)
            executor = SingleThreadedExecutor(context=ctx)
            executor.add_node(node)
            stop = threading.Event()
            thread = threading.Thread(target=_spin, args=(executor, ctx, stop), daemon=True,
                                      name=f'chef-status-{d}')
            self._parts[d] = (ctx, node, executor, thread, stop)
            thread.start()

    def views(self, now: Optional[float] = None) -> List[CellView]:
        now = time.time() if now is None else now
        return [v for d in sorted(self._parts) for v in self._parts[d][1].views(now)]

    def progress(self) -> List[FleetProgress]:
        return [p for d in sorted(self._parts) for p in [self._parts[d][1].progress()] if p is not None]

    @staticmethod
    def _end(part) -> None:
        ctx, node, executor, thread, stop = part
        stop.set()
        thread.join(timeout=2.0)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)

    def close(self) -> None:
        for d in list(self._parts):
            self._end(self._parts.pop(d))


def _spin(executor, ctx, stop: threading.Event) -> None:
    while not stop.is_set() and ctx.ok():
        try:
            executor.spin_once(timeout_sec=0.1)
        except Exception:  # noqa: BLE001 - a shutdown race ends the thread, not the command
            if stop.is_set() or not ctx.ok():
                return
            raise
