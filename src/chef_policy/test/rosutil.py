"""In-process ROS test plumbing: a private rclpy context per test, an executor thread, a harness node
that publishes observation frames through chef_contract.frames and records what comes back."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Dict, List

from rclpy.node import Node

from chef_contract import topics as T
from chef_contract.frames import frame_to_messages
from chef_contract.ros import create_contract_publisher, msg_class, qos
from chef_contract.testing import LocalGraph, wait_for as _wait_for


@contextlib.contextmanager
def ros_graph(*node_factories):
    """Start nodes (factories take `context=`) in a private context; yield them; tear down.

    One SingleThreadedExecutor in a daemon thread (chef_contract.testing.LocalGraph), as the nodes
    run in production (chef_contract.ros.spin_node). Not rclpy's MultiThreadedExecutor: with the
    nodes' mutually exclusive callback groups its idle workers busy-loop on entities they may not
    run yet, hold the GIL, and delayed in-process delivery to 0.1-5 s (measured) - which made the
    safety filter rightly judge fresh observations stale.
    """
    g = LocalGraph()
    try:
        nodes = [g.add(f(context=g.ctx)) for f in node_factories]
        g.start()
        yield nodes
    finally:
        g.close()


class Harness(Node):
    """Publishes frames / commands, records messages of the topics it listens to (with arrival time)."""

    def __init__(self, listen=(), context=None, name='harness'):
        super().__init__(name, context=context)
        self.pubs: Dict[str, object] = {}
        self.received: Dict[str, List] = {t: [] for t in listen}
        self.lock = threading.Lock()
        for t in listen:        # deep reader history: a test must see every message, even bursts
            spec = T.topic(t)
            profile = qos(spec.qos, 'sub')
            profile.depth = 1000
            self.create_subscription(msg_class(spec.msg_type), t,
                                     lambda m, _t=t: self._record(_t, m), profile)

    def _record(self, topic, msg):
        with self.lock:
            self.received[topic].append((time.monotonic(), msg))

    def pub(self, topic: str, msg) -> None:
        if topic not in self.pubs:
            self.pubs[topic] = create_contract_publisher(self, topic)
        self.pubs[topic].publish(msg)

    def publish_frame(self, frame, stamp_ns: int, cameras=(), include_objects=True) -> None:
        for topic, msg in frame_to_messages(frame, stamp_ns, cameras=cameras,
                                            include_objects=include_objects).items():
            self.pub(topic, msg)

    def prepare(self, topics) -> None:
        for t in topics:
            if t not in self.pubs:
                self.pubs[t] = create_contract_publisher(self, t)

    def msgs(self, topic) -> List:
        with self.lock:
            return [m for _, m in self.received[topic]]

    def timed(self, topic) -> List:
        with self.lock:
            return list(self.received[topic])


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, period: float = 0.005) -> bool:
    """chef_contract.testing.wait_for, polling every 5 ms (these tests time 50 ms ticks)."""
    return _wait_for(cond, timeout, period)


def wait_matched(node: Node, topics, timeout=10.0) -> None:
    """Wait until each publisher of `node` on `topics` sees a subscriber (discovery done)."""
    assert wait_for(lambda: all(node.pubs[t].get_subscription_count() > 0 for t in topics), timeout), \
        f'no subscriber matched on {[t for t in topics if node.pubs[t].get_subscription_count() == 0]}'


__all__ = ['ros_graph', 'Harness', 'wait_for', 'wait_matched', 'T', 'qos']
