"""rclpy glue for the contract: QoS profiles, message <-> numpy, named vectors, node main().

Imports rclpy and message packages; keep ROS-free code out of here.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

import numpy as np
from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
)

from chef_contract.msgnp import (  # noqa: F401 - ROS-free converters, re-exported here
    GRIPPER_TICK_LABEL, gripper_tick_stamp, msg_to_image, msg_to_pose7, named_vector_values, stamp_to_ns,
)
from chef_contract.spec import CONTROL_PERIOD_S
from chef_contract.topics import QOS_CLASSES, topic as lookup_topic

STALE_COMMAND_DEADLINE_S = 2 * CONTROL_PERIOD_S
SENSOR_WRITER_DEPTH = 100      # samples per sensor topic a writer keeps for slow reliable readers


def qos(cls: str, role: str = 'pub') -> QoSProfile:
    """rclpy QoS profile for contract QoS class `cls` and role 'pub' or 'sub' (see topics.py)."""
    if cls not in QOS_CLASSES:
        raise ValueError(f'unknown QoS class {cls!r}; expected one of {QOS_CLASSES}')
    if role not in ('pub', 'sub'):
        raise ValueError("role must be 'pub' or 'sub'")
    if cls == 'sensor':
        # Writers keep SENSOR_WRITER_DEPTH samples so a reliable reader (the recorder of a sim cell)
        # that stalls for a moment still gets every tick; readers default to best effort so they
        # also match real drivers that publish with the sensor-data profile.
        rel = ReliabilityPolicy.RELIABLE if role == 'pub' else ReliabilityPolicy.BEST_EFFORT
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=SENSOR_WRITER_DEPTH if role == 'pub' else 10,
                          reliability=rel, durability=DurabilityPolicy.VOLATILE)
    if cls == 'command':
        # Readers keep only the newest command (a late one is stale); writers keep as many as the
        # sensor writers, so a slow reliable reader (recorder, test probe) still gets every command:
        # a reliable sample not yet delivered is replaced by the next and lost once the writer's
        # history is full (depth 10 lost commands to recorder stalls of >10 ticks, measured).
        profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1 if role == 'sub' else SENSOR_WRITER_DEPTH,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        # Both roles: DDS matches a reader only if the writer's offered deadline is <= the
        # requested one, so a subscriber-only deadline would match no contract publisher.
        profile.deadline = Duration(seconds=STALE_COMMAND_DEADLINE_S)
        return profile
    if cls == 'event':
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if cls == 'latched':
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.BEST_EFFORT)


def msg_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    pkg, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{pkg}.msg'), name)


def create_contract_publisher(node, name: str, remap: Optional[str] = None):
    """Publisher for contract topic `name` with the contract's type and QoS."""
    t = lookup_topic(name)
    return node.create_publisher(msg_class(t.msg_type), remap or t.name, qos(t.qos, 'pub'))


def create_contract_subscription(node, name: str, callback, remap: Optional[str] = None,
                                 event_callbacks=None, callback_group=None, raw: bool = False,
                                 depth: Optional[int] = None, reliable: bool = False):
    """Subscription for contract topic `name` with the contract's type and QoS.

    raw=True delivers the serialized CDR bytes (recorders: no decode/re-encode on the hot path).
    depth, if given, enlarges the reader-side history (a recorder must not lose a sample when its
    executor stalls for a tick); reliable=True asks for RELIABLE delivery (a recorder of publishers
    that offer it: a sim cell; it would not match a best-effort driver). Every other QoS setting
    stays the contract's.
    """
    t = lookup_topic(name)
    profile = qos(t.qos, 'sub')
    if depth is not None and depth > profile.depth:
        profile.depth = depth
    if reliable:
        profile.reliability = ReliabilityPolicy.RELIABLE
    kwargs = {}
    if raw:
        kwargs['raw'] = True
    if event_callbacks is not None:
        kwargs['event_callbacks'] = event_callbacks
    if callback_group is not None:
        kwargs['callback_group'] = callback_group
    return node.create_subscription(msg_class(t.msg_type), remap or t.name, callback, profile, **kwargs)


# --- stamps -------------------------------------------------------------------------------------
def ns_to_stamp(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


# --- images -------------------------------------------------------------------------------------
def image_to_msg(arr: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = 'rgb8'):
    from sensor_msgs.msg import Image
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(f'expected HxWxC uint8 image, got {arr.dtype} {arr.shape}')
    m = Image(height=arr.shape[0], width=arr.shape[1], encoding=encoding, is_bigendian=0,
              step=arr.shape[1] * arr.shape[2])
    m.header.stamp = ns_to_stamp(stamp_ns)
    m.header.frame_id = frame_id
    m.data = np.ascontiguousarray(arr).tobytes()
    return m


def camera_info_msg(camera: str, size_px: int):
    """sensor_msgs/CameraInfo of a basket camera rendered at size x size px: pinhole intrinsics from the
    spec's vertical fov, principal point at the centre, no distortion (plumb_bob, zeros). Header left
    to the caller (frame `topics.camera_frame(camera)`, the image's stamp)."""
    from sensor_msgs.msg import CameraInfo

    from chef_contract.spec import CAMERAS
    f = CAMERAS[camera].focal_length_px(size_px)
    c = size_px / 2.0
    info = CameraInfo()
    info.width = info.height = size_px
    info.distortion_model = 'plumb_bob'
    info.d = [0.0] * 5
    info.k = [f, 0.0, c, 0.0, f, c, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, c, 0.0, 0.0, f, c, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


# --- named stamped vectors (sensor_msgs/JointState used as name -> value) ------------------------
def named_vector_msg(names: Sequence[str], values: Sequence[float], stamp_ns: int, frame_id: str = ''):
    from sensor_msgs.msg import JointState
    if len(names) != len(values):
        raise ValueError('names and values differ in length')
    m = JointState()
    m.header.stamp = ns_to_stamp(stamp_ns)
    m.header.frame_id = frame_id
    m.name = list(names)
    m.position = [float(v) for v in values]
    return m


# --- poses --------------------------------------------------------------------------------------
def pose7_to_msg(p: Sequence[float]):
    """7-vector (x, y, z, qw, qx, qy, qz) -> geometry_msgs/Pose."""
    from geometry_msgs.msg import Pose
    m = Pose()
    m.position.x, m.position.y, m.position.z = (float(v) for v in p[:3])
    m.orientation.w, m.orientation.x, m.orientation.y, m.orientation.z = (float(v) for v in p[3:7])
    return m


# --- node entry point ---------------------------------------------------------------------------
SHUTDOWN_GRACE_S = 1.0     # rclpy shuts the context down from its signal thread, not at once


def _shut_down_soon(rclpy, grace_s: float = SHUTDOWN_GRACE_S) -> bool:
    """True when rclpy's default context is shut down now or within `grace_s` (a signal's stop in flight)."""
    import time
    deadline = time.monotonic() + grace_s
    while rclpy.ok():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _is_wrapped_interrupt(exc: BaseException) -> bool:
    """True for a KeyboardInterrupt that a C boundary re-raised as another exception: ctypes turns
    an exception raised while it converts an argument into ArgumentError('argument N:
    KeyboardInterrupt: ...') with no __context__, so the message is all that is left of it."""
    import ctypes
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return True
        if isinstance(exc, ctypes.ArgumentError) and ': KeyboardInterrupt' in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


TEARDOWN_WATCHDOG_S = 5.0      # spin_node: DDS teardown (destroy node, shut the context down) longer = hung


def spin_node(node_factory, args=None, executor=None) -> int:
    """Run a node with the kilted-safe signal idiom; returns the process exit code.

    The executor is rclpy's SingleThreadedExecutor unless $CHEF_RCLPY_EXECUTOR=events selects the
    bounded EventsExecutor (chef_contract.executors).

    SIGINT/SIGTERM shut the context down (rclpy raises ExternalShutdownException), which is a clean
    stop (exit 0). When the signal lands while the executor is between its shutdown check and
    building its wait set, rclpy raises RCLError ('context is not valid') instead: with the context
    already shut down that is the same requested stop. A signal that lands while a message is being
    taken makes pybind11's conversion fail ('Unable to convert call argument') before rclpy's
    signal thread has shut the context down, so a RuntimeError counts as the stop when the context
    goes down within SHUTDOWN_GRACE_S. A SIGINT that lands inside a ctypes call (MuJoCo's EGL
    renderer) arrives as ctypes.ArgumentError wrapping the KeyboardInterrupt, also a clean stop
    (_is_wrapped_interrupt). Any other exception is logged and gives exit code 1.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from chef_contract.executors import executor_for

    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = node_factory()
        ex = executor or executor_for(node)      # $CHEF_RCLPY_EXECUTOR (chef_contract.executors)
        ex.add_node(node)
        ex.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - report and exit non-zero
        stop = _is_wrapped_interrupt(exc) or (
            node is not None and isinstance(exc, RuntimeError) and _shut_down_soon(rclpy))
        if not stop:
            import traceback
            traceback.print_exc()
            print(f'[FATAL] {type(exc).__name__}: {exc}', flush=True)
            code = 1
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001
                    import traceback
                    traceback.print_exc()
                    code = code or 1
        # The node's own close() has run (a recorder's bags are published): what is left is DDS
        # teardown, which Fast DDS has been seen to deadlock in (a DataWriter's destructor waiting on
        # its event thread, GIL held, deaf to SIGTERM). A C-level watchdog dumps every thread's
        # stack and exits 1 after TEARDOWN_WATCHDOG_S instead of waiting for the runner's SIGKILL.
        import faulthandler
        try:
            faulthandler.dump_traceback_later(TEARDOWN_WATCHDOG_S, exit=True, file=sys.__stderr__)
        except (AttributeError, ValueError, OSError):   # no real stderr (embedded, captured): no watchdog
            pass
        try:
            if node is not None:
                try:
                    node.destroy_node()
                except Exception:  # noqa: BLE001
                    pass
            rclpy.try_shutdown()
        finally:
            faulthandler.cancel_dump_traceback_later()
    return code


def gripper_command_msg(target_rad: float, tick_stamp_ns: 'int | None' = None):
    """std_msgs/Float64MultiArray([target]) for gripper_controller/commands, tagged with the control
    tick it belongs to (see chef_contract.msgnp.GRIPPER_TICK_LABEL) when `tick_stamp_ns` is given."""
    from std_msgs.msg import Float64MultiArray, MultiArrayDimension

    msg = Float64MultiArray(data=[float(target_rad)])
    if tick_stamp_ns is not None:
        msg.layout.dim = [MultiArrayDimension(label=f'{GRIPPER_TICK_LABEL}{int(tick_stamp_ns)}', size=1,
                                              stride=1)]
    return msg
