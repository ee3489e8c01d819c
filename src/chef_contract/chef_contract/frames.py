"""Observation frame <-> ROS messages: the one mapping used by the sim bridge (frame -> messages),
the policy node and the dataset reader (messages -> frame).

A *frame* is one tick of unstacked observations keyed by the benchmark names of spec.py
(`sawyer/joints/angle`, `wrist/force`, `basket_front_left/pixels`, ...), float arrays in the
benchmark's units, images HxWx3 uint8. Because sim and real cells publish the same messages and every
consumer rebuilds frames with `messages_to_frame`, sim and real data merge by construction.

Unit conventions (spec §B.6-B.7):
  * gripper/joints/angle: benchmark scale 0 (open) .. 255 (closed); on ROS the finger joint is in
    rad (0 .. 0.8); gripper/joints/velocity: benchmark = change of that 0..255 value per control
    tick, on ROS rad/s (what a real driver publishes) - both converted here, nowhere else;
  * poses: (x, y, z, qw, qx, qy, qz) in base_link, qw >= 0;
  * action/environment: 7 arm joint-velocity commands (rad/s) + gripper command (-255 | 255).
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from chef_contract import topics as T
from chef_contract.spec import (
    ARM_JOINT_NAMES, CAMERA_NAMES, CONTROL_PERIOD_S, GRIPPER_CLOSED_POSITION_RAD, GRIPPER_JOINT_NAME,
    OBJECT_COLOURS, image_key,
)

FINGER_RAD_TO_BENCH = 255.0 / GRIPPER_CLOSED_POSITION_RAD    # rad -> 0..255 benchmark scale
FINGER_RPS_TO_BENCH = FINGER_RAD_TO_BENCH * CONTROL_PERIOD_S   # rad/s -> benchmark units per tick
JOINT_NAMES = ARM_JOINT_NAMES + (GRIPPER_JOINT_NAME,)


class FrameError(ValueError):
    """Messages that cannot form an observation frame (missing joints, wrong sizes, NaN)."""


def _object_key(colour: str, what: str) -> str:
    return f'rgb30_{colour}/{what}'


# ------------------------------------------------------------------------------------------------
def frame_to_messages(frame: Mapping[str, np.ndarray], stamp_ns: int,
                      cameras: Iterable[str] = CAMERA_NAMES, camera_infos: Optional[Mapping] = None,
                      include_objects: bool = True) -> Dict[str, object]:
    """One observation frame -> {contract topic name: message}, all stamped `stamp_ns`."""
    from geometry_msgs.msg import PoseArray, PoseStamped, TwistStamped, WrenchStamped
    from sensor_msgs.msg import JointState

    from chef_contract.ros import image_to_msg, named_vector_msg, ns_to_stamp, pose7_to_msg

    stamp = ns_to_stamp(stamp_ns)
    out: Dict[str, object] = {}

    js = JointState()
    js.header.stamp, js.header.frame_id = stamp, T.WORLD_FRAME
    js.name = list(JOINT_NAMES)
    finger = float(np.ravel(frame['gripper/joints/angle'])[0]) / FINGER_RAD_TO_BENCH
    finger_v = float(np.ravel(frame['gripper/joints/velocity'])[0]) / FINGER_RPS_TO_BENCH
    js.position = [float(v) for v in frame['sawyer/joints/angle']] + [finger]
    js.velocity = [float(v) for v in frame['sawyer/joints/velocity']] + [finger_v]
    js.effort = [float(v) for v in frame['sawyer/joints/torque']] + [0.0]
    out[T.JOINT_STATES] = js

    w = WrenchStamped()
    w.header.stamp, w.header.frame_id = stamp, T.FT_SENSOR_FRAME
    w.wrench.force.x, w.wrench.force.y, w.wrench.force.z = (float(v) for v in frame['wrist/force'])
    w.wrench.torque.x, w.wrench.torque.y, w.wrench.torque.z = (float(v) for v in frame['wrist/torque'])
    out[T.WRENCH] = w

    out[T.GRASP_STATUS] = named_vector_msg(
        ['grasp_status'], [float(np.ravel(frame['gripper/grasp'])[0])], stamp_ns, T.WORLD_FRAME)

    for topic, key in ((T.PINCH_POSE, 'sawyer/pinch/pose'), (T.WRIST_POSE, 'sawyer/tcp/pose')):
        ps = PoseStamped()
        ps.header.stamp, ps.header.frame_id = stamp, T.WORLD_FRAME
        ps.pose = pose7_to_msg(frame[key])
        out[topic] = ps

    tw = TwistStamped()
    tw.header.stamp, tw.header.frame_id = stamp, T.WORLD_FRAME
    v = [float(x) for x in frame['sawyer/tcp/velocity']]
    tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = v[:3]
    tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z = v[3:]
    out[T.WRIST_TWIST] = tw

    cmd = np.asarray(frame['action/environment'], np.float64).reshape(-1)
    jc = JointState()
    jc.header.stamp, jc.header.frame_id = stamp, T.WORLD_FRAME
    jc.name = list(JOINT_NAMES)
    jc.position = [0.0] * len(ARM_JOINT_NAMES) + [float(cmd[7])]
    jc.velocity = [float(x) for x in cmd[:7]] + [0.0]
    out[T.JOINT_COMMAND_APPLIED] = jc

    if include_objects and all(_object_key(c, 'abs_pose') in frame for c in OBJECT_COLOURS):
        pa = PoseArray()
        pa.header.stamp, pa.header.frame_id = stamp, T.WORLD_FRAME
        pa.poses = [pose7_to_msg(frame[_object_key(c, 'abs_pose')]) for c in OBJECT_COLOURS]
        out[T.OBJECT_POSES] = pa

    for cam in cameras:
        key = image_key(cam)
        if key in frame:
            out[T.image_topic(cam)] = image_to_msg(np.asarray(frame[key]), stamp_ns, T.camera_frame(cam))
            if camera_infos and cam in camera_infos:
                info = camera_infos[cam]
                info.header.stamp, info.header.frame_id = stamp, T.camera_frame(cam)
                out[T.camera_info_topic(cam)] = info
    return out


# ------------------------------------------------------------------------------------------------
def _by_name(msg, names, field: str, what: str) -> np.ndarray:
    values = getattr(msg, field)
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise FrameError(f'{what}: joints {missing} missing (have {list(msg.name)})')
    if len(values) < len(msg.name):
        raise FrameError(f'{what}: {field} has {len(values)} values for {len(msg.name)} joints')
    return np.array([values[index[n]] for n in names], np.float64)


def messages_to_frame(msgs: Mapping[str, object], cameras: Iterable[str] = (),
                      require_objects: bool = False) -> Dict[str, np.ndarray]:
    """{contract topic name: message} -> one observation frame (float32, images uint8 copies).

    `msgs` needs every `chef_contract.topics.STATE_TOPICS` entry (joint_states, wrist/wrench,
    gripper/grasp_status, tcp/*, joint_command/applied); sim/object_poses adds the privileged object
    keys; each camera in `cameras` needs its image (`topics.observation_topics` lists them all).
    Raises FrameError naming what is missing or bad.
    """
    from chef_contract.msgnp import msg_to_image, msg_to_pose7, named_vector_values

    cameras = tuple(cameras)
    need = T.STATE_TOPICS + tuple(T.image_topic(c) for c in cameras) + (
        (T.OBJECT_POSES,) if require_objects else ())
    missing = [n for n in need if msgs.get(n) is None]
    if missing:
        raise FrameError(f'no message yet on {missing}')
    f: Dict[str, np.ndarray] = {}
    js = msgs[T.JOINT_STATES]
    f['sawyer/joints/angle'] = _by_name(js, ARM_JOINT_NAMES, 'position', T.JOINT_STATES)
    f['sawyer/joints/velocity'] = _by_name(js, ARM_JOINT_NAMES, 'velocity', T.JOINT_STATES)
    f['sawyer/joints/torque'] = _by_name(js, ARM_JOINT_NAMES, 'effort', T.JOINT_STATES)
    f['gripper/joints/angle'] = _by_name(js, [GRIPPER_JOINT_NAME], 'position', T.JOINT_STATES) * FINGER_RAD_TO_BENCH
    f['gripper/joints/velocity'] = _by_name(js, [GRIPPER_JOINT_NAME], 'velocity', T.JOINT_STATES) * FINGER_RPS_TO_BENCH
    w = msgs[T.WRENCH].wrench
    f['wrist/force'] = np.array([w.force.x, w.force.y, w.force.z])
    f['wrist/torque'] = np.array([w.torque.x, w.torque.y, w.torque.z])
    grasp = named_vector_values(msgs[T.GRASP_STATUS])
    if 'grasp_status' not in grasp:
        raise FrameError(f'{T.GRASP_STATUS} lacks the grasp_status entry')
    f['gripper/grasp'] = np.array([grasp['grasp_status']])
    f['sawyer/pinch/pose'] = msg_to_pose7(msgs[T.PINCH_POSE].pose)
    f['sawyer/tcp/pose'] = msg_to_pose7(msgs[T.WRIST_POSE].pose)
    tw = msgs[T.WRIST_TWIST].twist
    f['sawyer/tcp/velocity'] = np.array([tw.linear.x, tw.linear.y, tw.linear.z,
                                         tw.angular.x, tw.angular.y, tw.angular.z])
    jc = msgs[T.JOINT_COMMAND_APPLIED]
    f['action/environment'] = np.concatenate([
        _by_name(jc, ARM_JOINT_NAMES, 'velocity', T.JOINT_COMMAND_APPLIED),
        _by_name(jc, [GRIPPER_JOINT_NAME], 'position', T.JOINT_COMMAND_APPLIED)])
    objects = msgs.get(T.OBJECT_POSES)
    if objects is not None:
        if len(objects.poses) != len(OBJECT_COLOURS):
            raise FrameError(f'{T.OBJECT_POSES} has {len(objects.poses)} poses, expected 3 (r, g, b)')
        pinch = f['sawyer/pinch/pose']
        for colour, pose in zip(OBJECT_COLOURS, objects.poses):
            p = msg_to_pose7(pose)
            f[_object_key(colour, 'abs_pose')] = p
            f[_object_key(colour, 'to_pinch')] = p - pinch
    out = {k: np.asarray(v, np.float32) for k, v in f.items()}
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            raise FrameError(f'{k} is not finite: {v.tolist()}')
    for cam in cameras:
        out[image_key(cam)] = np.array(msg_to_image(msgs[T.image_topic(cam)]), copy=True)
    return out
