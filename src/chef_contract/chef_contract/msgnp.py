"""ROS-free message -> numpy converters: work on rclpy messages and on rosbags-decoded ones alike.

Field access only (no rclpy import), so the dataset reader decodes bags without ROS libraries.
`chef_contract.ros` re-exports these names.
"""

from __future__ import annotations

from typing import Dict

import numpy as np


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def msg_to_image(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8/bgr8/mono8) -> HxWxC uint8 view (read-only)."""
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}.get(msg.encoding)
    if channels is None:
        raise ValueError(f'unsupported image encoding {msg.encoding!r}')
    expected = msg.height * msg.width * channels
    data = msg.data
    if not isinstance(data, (bytes, memoryview, np.ndarray)):
        data = bytes(data)
    data = np.frombuffer(data, np.uint8)
    if data.size != expected:
        raise ValueError(f'image data has {data.size} bytes, expected {expected}')
    img = data.reshape(msg.height, msg.width, channels)
    if msg.encoding == 'bgr8':
        img = img[..., ::-1]
    return img


def named_vector_values(msg) -> Dict[str, float]:
    """sensor_msgs/JointState used as a stamped named vector -> {name: value}."""
    return dict(zip(msg.name, (float(v) for v in msg.position)))


def msg_to_pose7(m) -> np.ndarray:
    """geometry_msgs/Pose -> 7-vector (x, y, z, qw, qx, qy, qz) with qw >= 0 (spec X3)."""
    q = np.array([m.orientation.w, m.orientation.x, m.orientation.y, m.orientation.z])
    if q[0] < 0:
        q = -q
    return np.array([m.position.x, m.position.y, m.position.z, *q], np.float64)


# --- gripper commands tagged with their control tick ----------------------------------------------
# std_msgs/Float64MultiArray (what a ros2_control forward command controller takes) has no header.
# Commanders put the stamp of the tick the command belongs to into the layout's first dimension label,
# 'tick_stamp_ns=<int>'; ros2_control ignores the layout, while a lockstep sim and the dataset reader
# use it to pair the gripper with its tick exactly instead of by arrival time.
GRIPPER_TICK_LABEL = 'tick_stamp_ns='


def gripper_tick_stamp(msg) -> 'int | None':
    """The tick stamp a gripper command carries, or None (untagged command)."""
    dims = getattr(getattr(msg, 'layout', None), 'dim', None) or []
    if dims and isinstance(dims[0].label, str) and dims[0].label.startswith(GRIPPER_TICK_LABEL):
        try:
            return int(dims[0].label[len(GRIPPER_TICK_LABEL):])
        except ValueError:
            return None
    return None
