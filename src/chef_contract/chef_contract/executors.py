"""Which rclpy executor a node process spins: `single` (rclpy's SingleThreadedExecutor, the default)
or `events` (rclpy's C++ EventsExecutor, made safe to use in this build).

Why `events` needs a wrapper here (docs/performance.md, bench/results/experiments/events_executor.json):
the PyPI wheel of rclpy 9.1.2 is built against a glibc without pthread_cond_clockwait (its
_rclpy_pybind11 module imports pthread_cond_timedwait only). EventsExecutor.spin() without a timeout
runs EventsQueue::Run() = RunUntil(steady_clock::time_point::max()), whose
condition_variable::wait_until then converts that deadline to system_clock by adding the remaining
delta to system_clock::now(): the sum overflows to a negative time, pthread_cond_timedwait returns
ETIMEDOUT at once *without releasing the mutex*, and the predicate loop spins at 100 % CPU holding
the queue's mutex, so no DDS listener can enqueue an event and no Stop() (signal, shutdown) gets in:
the process hangs. Every finite deadline converts fine, so `BoundedEventsExecutor.spin()` runs the
EventsExecutor in slices of `slice_s` (spin_until_future_complete on a future that never
completes), checking the context between slices.

Two more limits of that build's EventsExecutor (events_executor.cpp, HandleSubscriptionReady and
UpdateEntitiesFromNodes): a subscription whose callback takes (msg, message_info) fails the whole
spin with `SystemError: null argument to internal routine` at its first message (the recorder's
raw callbacks read the publication sequence numbers from message_info), and guard conditions are
refused. `executor_for(node)` therefore keeps such a node on the SingleThreadedExecutor.

Select with the environment variable CHEF_RCLPY_EXECUTOR (`single` | `events`); spin_node reads it.
"""

from __future__ import annotations

import os
from typing import Optional

EXECUTOR_ENV = 'CHEF_RCLPY_EXECUTOR'
EXECUTOR_KINDS = ('single', 'events')
EVENTS_SLICE_S = 1.0       # s of wall time per bounded EventsExecutor run


class BoundedEventsExecutor:
    """rclpy's EventsExecutor, spun only with finite deadlines (see the module docstring)."""

    def __init__(self, context=None, slice_s: float = EVENTS_SLICE_S):
        import rclpy
        from rclpy.experimental.events_executor import EventsExecutor
        from rclpy.task import Future
        if not slice_s > 0:
            raise ValueError(f'slice_s must be > 0 s, got {slice_s}')
        self.context = context or rclpy.get_default_context()
        self._ex = EventsExecutor(context=self.context)
        self._never = Future()          # never completes: each slice runs to its deadline
        self._slice_s = float(slice_s)
        self._stopped = False

    def add_node(self, node) -> bool:
        return self._ex.add_node(node)

    def remove_node(self, node) -> None:
        self._ex.remove_node(node)

    def spin_once(self, timeout_sec: Optional[float] = None) -> None:
        """At most one callback, waiting at most `timeout_sec` (None: one slice)."""
        self._ex.spin_once(timeout_sec=self._slice_s if timeout_sec is None else timeout_sec)

    def spin(self) -> None:
        """Until shutdown() or the context shuts down (rclpy raises ExternalShutdownException then)."""
        while not self._stopped:
            self._ex.spin_until_future_complete(self._never, timeout_sec=self._slice_s)

    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        self._stopped = True
        return self._ex.shutdown(timeout_sec=timeout_sec)


def executor_kind(env=None) -> str:
    """The executor named by $CHEF_RCLPY_EXECUTOR ('single' when unset); a bad name is an error."""
    kind = (env if env is not None else os.environ).get(EXECUTOR_ENV, '').strip() or 'single'
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f'{EXECUTOR_ENV}={kind!r}: expected one of {EXECUTOR_KINDS}')
    return kind


def events_blockers(node) -> list:
    """Why the EventsExecutor of this rclpy build cannot run `node` (empty: it can)."""
    from rclpy.subscription import Subscription
    out = [f'{s.topic_name}: callback takes message_info' for s in node.subscriptions
           if s._callback_type == Subscription.CallbackType.WithMessageInfo]
    if list(node.guards):
        out.append('guard conditions')
    return out


def executor_for(node, kind: Optional[str] = None, context=None):
    """make_executor(kind), except that a node the EventsExecutor cannot run (events_blockers) gets
    the SingleThreadedExecutor, with one log line saying why."""
    kind = kind or executor_kind()
    if kind == 'events':
        blockers = events_blockers(node)
        if blockers:
            node.get_logger().info(f'{EXECUTOR_ENV}=events: this node stays on the SingleThreadedExecutor '
                                   f'({"; ".join(blockers[:3])}{" ..." if len(blockers) > 3 else ""})')
            kind = 'single'
    return make_executor(kind, context=context)


def make_executor(kind: Optional[str] = None, context=None):
    """A new executor of `kind` (default: executor_kind()) for `context`."""
    from rclpy.executors import SingleThreadedExecutor
    kind = kind or executor_kind()
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f'unknown executor {kind!r}; expected one of {EXECUTOR_KINDS}')
    if kind == 'events':
        return BoundedEventsExecutor(context=context)
    return SingleThreadedExecutor(context=context)
