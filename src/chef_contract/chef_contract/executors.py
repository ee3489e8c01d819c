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
UpdateEntitiesFromNodes): it calls a (msg, message_info) callback with the pair as ONE argument
(rclpy's own executors call callback(msg, info)), so the callback's TypeError fails the whole spin
with `SystemError: null argument to internal routine` at the first message; and it refuses guard
conditions. `BoundedEventsExecutor.add_node` therefore wraps every message-info callback of the node
in an adapter that unpacks the pair (the subscription keeps its WithMessageInfo type, so rclpy
still delivers the info); the node's `executor` is pointed at the wrapper, so a subscription created
later is adapted by the node's own wake() before the EventsExecutor registers it. `executor_for(node)`
keeps a node with guard conditions on the SingleThreadedExecutor.

Select with the environment variable CHEF_RCLPY_EXECUTOR (`single` | `events`); spin_node reads it.
"""

from __future__ import annotations

import os
from typing import Optional

EXECUTOR_ENV = 'CHEF_RCLPY_EXECUTOR'
EXECUTOR_KINDS = ('single', 'events')
EVENTS_SLICE_S = 1.0       # s of wall time per bounded EventsExecutor run


class UnpackMessageInfo:
    """Adapter for the EventsExecutor's message-info call: callback((msg, info)) -> callback(msg, info)."""

    __slots__ = ('callback',)

    def __init__(self, callback):
        self.callback = callback

    def __call__(self, msg_and_info):
        return self.callback(*msg_and_info)


def adapt_message_info_callbacks(node) -> int:
    """Wrap `node`'s (msg, message_info) subscription callbacks in UnpackMessageInfo (once each);
    returns how many were wrapped now. Only for nodes spun by the EventsExecutor."""
    from rclpy.subscription import Subscription
    wrapped = 0
    for sub in node.subscriptions:
        if (sub._callback_type == Subscription.CallbackType.WithMessageInfo
                and not isinstance(sub._callback, UnpackMessageInfo)):
            sub._callback = UnpackMessageInfo(sub._callback)     # not the setter: keeps the type
            wrapped += 1
    return wrapped


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
        import weakref
        adapt_message_info_callbacks(node)
        added = self._ex.add_node(node)
        # the EventsExecutor set node.executor to itself; point it at this wrapper instead (rclpy's
        # Node keeps it as a weak reference), so Node._wake_executor() after a new entity runs wake()
        node._Node__executor_weakref = weakref.ref(self)
        return added

    def wake(self) -> None:
        """Node._wake_executor(): a new entity. Adapt message-info callbacks before the
        EventsExecutor (woken here) registers them."""
        for node in self._ex.get_nodes():
            adapt_message_info_callbacks(node)
        self._ex.wake()

    def get_nodes(self):
        return self._ex.get_nodes()

    def create_task(self, callback, *args, **kwargs):
        return self._ex.create_task(callback, *args, **kwargs)

    def create_future(self):
        return self._ex.create_future()

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
    return ['guard conditions'] if list(node.guards) else []


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
