"""Test helpers shared by every package's tests (no pytest import at module level).

* `unique_domain_id()` hands out a ROS_DOMAIN_ID no other live test process holds, so tests of
  different packages (colcon runs them in parallel) and dead peers of earlier runs never cross-talk.
* `executable(package, name)` finds an installed console script of a workspace package.
* `ros_env(domain)` is the environment for child processes of a cross-process test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

from chef_contract.domains import domain_range, reserve_domain_id as unique_domain_id  # noqa: F401


def executable(package: str, name: str) -> str:
    """Path of console script `name` installed by workspace package `package`."""
    from ament_index_python.packages import get_package_prefix
    path = Path(get_package_prefix(package)) / 'lib' / package / name
    if not path.exists():
        raise FileNotFoundError(f'{package} does not install an executable {name!r} ({path})')
    return str(path)


def ros_env(domain_id: int, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    env.setdefault('MUJOCO_GL', 'egl')
    if extra:
        env.update(extra)
    return env


def wait_for(cond, timeout: float = 10.0, period: float = 0.01) -> bool:
    """Poll `cond()` until it is true or `timeout` (s) passes; returns its last value as bool."""
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(period)
    return bool(cond())


def stop_process(proc, timeout: float = 20.0):
    """SIGINT a child process (a node's clean stop), SIGKILL it after `timeout`; its return code."""
    import signal
    import subprocess
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


_LOGGING_HOLDER = None


def hold_rclpy_logging() -> None:
    """Keep one (node-less) rclpy context initialised for the rest of this process.

    rclpy finalises rcl logging when the last initialised context shuts down, and that tears down
    the rosout publisher of every node still registered - in a test process, nodes of earlier
    tests whose contexts are gone. Fast DDS has deadlocked there (a DataWriter destructor waiting on
    its participant's event thread, seen in a probe's close after ~45 tests), so a test session
    holds one context open and logging is never finalised before the process exits.
    """
    global _LOGGING_HOLDER
    if _LOGGING_HOLDER is None:
        import rclpy
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=unique_domain_id())
        _LOGGING_HOLDER = ctx


class BackgroundSpin:
    """Spin one node of its own rclpy context in a daemon thread (test probes and commanders).

    `close()` shuts the executor, node and context down; exceptions raised because the context went
    away under the spinning thread at teardown end the thread quietly.
    """

    def __init__(self, node, context):
        import threading

        from rclpy.executors import SingleThreadedExecutor
        self.node, self.ctx = node, context
        self.ex = SingleThreadedExecutor(context=context)
        self.ex.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self.ctx.ok():
            try:
                self.ex.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context shut down under us at teardown
                return

    def close(self):
        import rclpy
        self.ex.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        self.thread.join(timeout=2.0)


class LocalGraph:
    """Nodes of one test in their own rclpy context (on a unique domain) and one executor.

    `add(node)` registers a node and returns it; `spin_until(pred)` spins in the calling thread;
    `start()` spins in a daemon thread instead; `close()` stops the thread, closes (`node.close()`
    where a node has one) and destroys every node and shuts the context down.
    """

    def __init__(self):
        import threading

        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=unique_domain_id())
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.nodes = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def add(self, node):
        self.nodes.append(node)
        self.ex.add_node(node)
        return node

    __call__ = add

    def spin_until(self, pred, timeout: float = 10.0) -> bool:
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred():
            self.ex.spin_once(timeout_sec=0.02)
        return bool(pred())

    def start(self) -> None:
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set():
            self.ex.spin_once(timeout_sec=0.02)

    def close(self) -> None:
        import rclpy
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for n in self.nodes:
            close = getattr(n, 'close', None)
            if close:
                close()
            n.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


class CellProbe:
    """The test side of one cell: a node in the cell's namespace (own rclpy context on `domain`) that
    keeps every message of the contract `topics` (and of `extra` {topic: message type}) with its
    receive times, and publishes episode commands (`command`). Spins in a daemon thread from
    construction (`spin=False` leaves the start to `start()`, after a subclass added its own
    subscriptions). Subclasses that index messages differently override `record(topic, msg)`.
    """

    DEPTH = 1000                            # reader history: a probe must not lose a tick's message

    def __init__(self, domain: int, topics=(), ns: str = '/cell0', extra: Optional[Dict[str, str]] = None,
                 spin: bool = True):
        import threading

        import rclpy

        from chef_contract import topics as T
        from chef_contract.ros import create_contract_publisher, msg_class
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node('probe', namespace=ns, context=self.ctx)
        self.lock = threading.Lock()
        self._received: Dict[str, list] = {}        # topic -> [(monotonic s, wall s, msg)]
        for t in topics:
            self.listen(t)
        for t, msg_type in (extra or {}).items():
            self._received.setdefault(t, [])
            self.node.create_subscription(msg_class(msg_type), t, self._callback(t), self.DEPTH)
        self.command = create_contract_publisher(self.node, T.EPISODE_COMMAND)
        self.spin = None
        if spin:
            self.start()

    def listen(self, topic: str, callback=None) -> None:
        """Subscribe to contract topic `topic` (before `start()`; `callback(msg)` replaces `record`)."""
        from chef_contract.ros import create_contract_subscription
        self._received.setdefault(topic, [])
        create_contract_subscription(self.node, topic, callback or self._callback(topic), depth=self.DEPTH)

    def start(self) -> None:
        self.spin = BackgroundSpin(self.node, self.ctx)

    def _callback(self, topic: str):
        return lambda msg: self.record(topic, msg)

    def record(self, topic: str, msg) -> None:
        import time
        with self.lock:
            self._received[topic].append((time.monotonic(), time.time(), msg))

    def get(self, topic: str) -> list:
        """Messages received on `topic`, oldest first."""
        with self.lock:
            return [m for _, _, m in self._received[topic]]

    def timed(self, topic: str) -> list:
        """(monotonic receive time, message) pairs of `topic`, oldest first."""
        with self.lock:
            return [(t, m) for t, _, m in self._received[topic]]

    def wall_times(self, topic: str) -> list:
        """Wall-clock receive times (time.time()) of `topic`'s messages, oldest first."""
        with self.lock:
            return [w for _, w, _ in self._received[topic]]

    def events(self) -> list:
        """Episode events received (chef_contract.events.EpisodeEvent), oldest first."""
        from chef_contract import topics as T
        from chef_contract.events import EpisodeEvent
        return [EpisodeEvent.from_json(m.data) for m in self.get(T.EPISODE_EVENTS)]

    def subscribers(self, topic: str) -> int:
        return self.node.count_subscribers(f'{self.node.get_namespace().rstrip("/")}/{topic}')

    def close(self) -> None:
        if self.spin is not None:
            self.spin.close()
        else:
            import rclpy
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.ctx)
