"""chef_contract.executors: the executor choice ($CHEF_RCLPY_EXECUTOR) and the bounded EventsExecutor,
which must deliver messages, stop on shutdown and sleep while idle (rclpy 9.1.2's own spin() without a
timeout busy-waits holding its queue's mutex and never returns: docs/performance.md)."""

import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from chef_contract.executors import (  # noqa: E402
    EXECUTOR_ENV, BoundedEventsExecutor, events_blockers, executor_for, executor_kind,
)
from chef_contract.testing import unique_domain_id  # noqa: E402


def test_executor_kind_reads_the_environment_and_rejects_unknown_names():
    assert executor_kind({}) == 'single'
    assert executor_kind({EXECUTOR_ENV: 'events'}) == 'events'
    with pytest.raises(ValueError, match=EXECUTOR_ENV):
        executor_kind({EXECUTOR_ENV: 'multi'})


@pytest.fixture
def ctx():
    c = rclpy.Context()
    rclpy.init(context=c, domain_id=unique_domain_id())
    yield c
    rclpy.try_shutdown(context=c)


def _talker(ctx, received, with_info=False):
    from std_msgs.msg import String
    node = rclpy.create_node('executor_probe', context=ctx, start_parameter_services=False,
                             enable_rosout=False)
    pub = node.create_publisher(String, 'chatter', 10)
    def with_message_info(m, info):
        assert isinstance(info, dict) and 'received_timestamp' in info
        received.append(m.data)
    cb = with_message_info if with_info else (lambda m: received.append(m.data))
    node.create_subscription(String, 'chatter', cb, 10)
    node.create_timer(0.01, lambda: pub.publish(String(data='x')))
    return node


def test_bounded_events_executor_delivers_sleeps_when_idle_and_stops(ctx):
    received = []
    node = _talker(ctx, received)
    ex = BoundedEventsExecutor(context=ctx, slice_s=0.2)
    ex.add_node(node)
    spin_cpu = []

    def spin():
        t0 = time.thread_time()
        ex.spin()
        spin_cpu.append(time.thread_time() - t0)
    th = threading.Thread(target=spin, daemon=True)
    th.start()
    end = time.monotonic() + 10
    while len(received) < 20 and time.monotonic() < end:
        time.sleep(0.01)
    assert len(received) >= 20, 'the timer -> publisher -> subscription loop did not run'
    for t in list(node.timers):
        node.destroy_timer(t)                       # idle from here on
    node.executor.wake()
    time.sleep(1.0)
    t0 = time.monotonic()
    assert ex.shutdown(timeout_sec=5.0)
    th.join(timeout=5)
    assert not th.is_alive(), 'spin() did not return after shutdown()'
    assert time.monotonic() - t0 < 3.0
    # ~1.3 s of spinning, 1 s of it idle: a busy-waiting loop would use about as much CPU as wall time
    assert spin_cpu and spin_cpu[0] < 0.5, f'spin used {spin_cpu} s CPU'
    node.destroy_node()


def test_message_info_callbacks_get_message_and_info_on_the_events_executor(ctx):
    """rclpy 9.1.2's EventsExecutor calls a (msg, info) callback with the pair as one argument (the
    spin then dies with SystemError); the bounded executor adapts such callbacks when it adds the node
    and when a subscription appears later."""
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String
    got = []
    node = _talker(ctx, got, with_info=True)
    assert events_blockers(node) == []
    assert isinstance(executor_for(node, 'single', context=ctx), SingleThreadedExecutor)
    ex = executor_for(node, 'events', context=ctx)
    assert isinstance(ex, BoundedEventsExecutor)
    infos = []

    def late(msg, info):
        infos.append(info)
    ex._slice_s = 0.2
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    node.create_subscription(String, 'chatter', late, 10)     # created while spinning
    end = time.monotonic() + 10
    while (len(got) < 10 or len(infos) < 10) and time.monotonic() < end and th.is_alive():
        time.sleep(0.01)
    assert ex.shutdown(timeout_sec=5.0)
    th.join(timeout=5)
    assert len(got) >= 10 and set(got) == {'x'}, 'message-info callback got no (or the wrong) messages'
    assert len(infos) >= 10 and all(i['publication_sequence_number'] > 0 for i in infos)
    node.destroy_node()


def test_spin_node_on_the_events_executor_stops_cleanly(monkeypatch):
    from rclpy.node import Node

    from chef_contract.ros import spin_node
    monkeypatch.setenv(EXECUTOR_ENV, 'events')
    ticks = []

    def factory():
        node = Node('spin_node_events_probe')

        def tick():
            ticks.append(1)
            if len(ticks) == 5:
                rclpy.shutdown()            # what the SIGINT/SIGTERM handler does
        node.create_timer(0.01, tick)
        return node
    t0 = time.monotonic()
    assert spin_node(factory) == 0
    assert len(ticks) >= 5 and time.monotonic() - t0 < 10
