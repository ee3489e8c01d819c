"""spin_node's exit codes: a stop requested by shutting the context down is clean (0) even when
rclpy reports it as an RCLError from the executor; a genuine error is 1."""

import pytest

rclpy = pytest.importorskip('rclpy')

from chef_contract.ros import spin_node  # noqa: E402


def _node(action):
    from rclpy.node import Node

    def factory():
        node = Node('spin_node_probe')
        node.create_timer(0.01, lambda: action())
        return node
    return factory


def test_error_raised_after_the_context_was_shut_down_is_a_clean_stop():
    def stop_then_raise():
        rclpy.shutdown()           # what the SIGINT/SIGTERM handler does
        raise RuntimeError('failed to initialize wait set: the given context is not valid')
    assert spin_node(_node(stop_then_raise)) == 0


def test_error_while_the_context_is_live_exits_1(capsys):
    def fail():
        raise RuntimeError('a real bug in a callback')
    assert spin_node(_node(fail)) == 1
    assert '[FATAL] RuntimeError: a real bug in a callback' in capsys.readouterr().out


def test_error_raised_while_a_signals_shutdown_is_in_flight_is_a_clean_stop():
    """A signal during take_message fails pybind11's conversion first; rclpy's signal thread shuts
    the context down a moment later. That is the requested stop, not a crash."""
    import threading

    def raise_then_stop():
        threading.Timer(0.2, rclpy.shutdown).start()      # the signal thread, slightly later
        raise RuntimeError("Unable to convert call argument '0' to Python object")
    assert spin_node(_node(raise_then_stop)) == 0


def _ctypes_call_interrupted_by(exc_type):
    """A real ctypes call whose argument conversion raises `exc_type` (what a signal landing in
    MuJoCo's EGL make_current looks like); ctypes re-raises it as ArgumentError."""
    import ctypes

    class Arg:
        @classmethod
        def from_param(cls, _value):
            raise exc_type()

    fn = ctypes.CDLL(None).abs
    fn.argtypes = [Arg]
    return lambda: fn(1)


def test_interrupt_wrapped_by_a_ctypes_call_is_a_clean_stop():
    assert spin_node(_node(_ctypes_call_interrupted_by(KeyboardInterrupt))) == 0


def test_other_error_wrapped_by_a_ctypes_call_exits_1(capsys):
    assert spin_node(_node(_ctypes_call_interrupted_by(ValueError))) == 1
    assert '[FATAL] ArgumentError' in capsys.readouterr().out
