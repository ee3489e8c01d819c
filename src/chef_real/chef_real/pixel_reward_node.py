"""pixel_reward: object positions and reward terms of a real cell, from the two front cameras.

In:  camera/<c>/image_raw of the `cameras` (the 128x128 contract images of camera_adapter),
     tcp/pinch_pose, joint_states (finger_joint), gripper/grasp_status.
Out: sim/object_poses (PoseArray red, green, blue in base_link; positions estimated, orientation
     identity: not estimated) and reward/terms (every REWARD_TERMS entry), both stamped with the
     images' stamp, once per synchronous image pair (20 Hz = one per control tick).
The algorithm is chef_real.pixel_objects (segmentation, triangulation) + chef_real.pixel_reward.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
from rclpy.node import Node

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.frames import FINGER_RAD_TO_BENCH
from chef_contract.params import declare_params
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, msg_to_image, msg_to_pose7, named_vector_msg,
    named_vector_values, ns_to_stamp, spin_node, stamp_to_ns,
)
from chef_contract.spec import GRIPPER_JOINT_NAME, OBJECT_COLOURS, POLICY_CAMERAS, REWARD_TERMS
from chef_real.cameras import load_cameras
from chef_real.pixel_objects import EstimatorConfig, SegmentationConfig
from chef_real.pixel_reward import PixelReward


@dataclass
class Params:
    cameras_file: str = field_('', help='config/real/cameras.yaml (absolute path)')
    cameras: List[str] = field_(default_factory=lambda: list(POLICY_CAMERAS), help='cameras to triangulate from')
    sync_tolerance_s: float = field_(0.03, help='images further apart than this are not one tick', min=0.0)
    stacked_bottom_offset_m: float = field_(0.005, help='see chef_real.pixel_objects.EstimatorConfig', min=0.0)
    surface_bias_m: List[float] = field_(default_factory=lambda: [0.0, 0.0, 0.0],
                                         help='mean estimate - truth offset to subtract (base_link m)')
    min_saturation: int = field_(120, help='HSV saturation threshold (0..255)', min=0, max=255)
    min_value: int = field_(40, help='HSV value threshold (0..255)', min=0, max=255)
    min_area_px: int = field_(4, help='smallest blob (pixels)', min=1)


class PixelRewardNode(Node):
    def __init__(self, **kwargs):
        super().__init__('pixel_reward', **kwargs)
        self.p = declare_params(self, Params)
        if not self.p.cameras_file:
            raise ValueError('cameras_file is not set (config/real/cameras.yaml)')
        if len(self.p.surface_bias_m) != 3:
            raise ValueError('surface_bias_m needs 3 values (x, y, z)')
        cals = load_cameras(self.p.cameras_file)
        cfg = EstimatorConfig(
            cameras=list(self.p.cameras), surface_bias_m=list(self.p.surface_bias_m),
            stacked_bottom_offset_m=self.p.stacked_bottom_offset_m,
            segmentation=SegmentationConfig(min_saturation=self.p.min_saturation, min_value=self.p.min_value,
                                            min_area_px=self.p.min_area_px))
        self.reward = PixelReward(cals, cfg)
        self.latest: Dict[str, object] = {}
        self._last_done_ns = -1
        self.pinch = None
        self.finger_255 = None
        self.grasp = None
        self.ticks = 0
        self.poses_pub = create_contract_publisher(self, T.OBJECT_POSES)
        self.terms_pub = create_contract_publisher(self, T.REWARD_TERMS)
        for c in self.p.cameras:
            create_contract_subscription(self, T.image_topic(c), lambda m, cam=c: self._on_image(cam, m))
        create_contract_subscription(self, T.PINCH_POSE, self._on_pinch)
        create_contract_subscription(self, T.JOINT_STATES, self._on_joints)
        create_contract_subscription(self, T.GRASP_STATUS, self._on_grasp)

    def _on_pinch(self, msg):
        self.pinch = msg_to_pose7(msg.pose)[:3]

    def _on_joints(self, msg):
        names = list(msg.name)
        if GRIPPER_JOINT_NAME in names:
            i = names.index(GRIPPER_JOINT_NAME)
            if i < len(msg.position) and np.isfinite(msg.position[i]):
                self.finger_255 = float(msg.position[i]) * FINGER_RAD_TO_BENCH

    def _on_grasp(self, msg):
        v = named_vector_values(msg).get('grasp_status')
        if v is not None:
            self.grasp = float(v)

    def _on_image(self, cam: str, msg):
        self.latest[cam] = msg
        if len(self.latest) < len(self.p.cameras):
            return
        stamps = [stamp_to_ns(self.latest[c].header.stamp) for c in self.p.cameras]
        if max(stamps) - min(stamps) > self.p.sync_tolerance_s * 1e9 or max(stamps) <= self._last_done_ns:
            return
        self._last_done_ns = max(stamps)
        try:
            images = {c: np.asarray(msg_to_image(self.latest[c])) for c in self.p.cameras}
        except ValueError as exc:
            self.get_logger().error(f'bad image: {exc}', throttle_duration_sec=5.0)
            return
        self._process(images, max(stamps))

    def _process(self, images, stamp_ns: int):
        from geometry_msgs.msg import Pose, PoseArray
        state_ok = self.pinch is not None and self.finger_255 is not None and self.grasp is not None
        if state_ok:
            terms = self.reward.update(images, self.pinch, self.finger_255, self.grasp)
        else:
            self.reward.estimator.update(images)
            terms = None
            self.get_logger().warning('no tcp/pinch_pose, finger_joint or grasp status yet: no reward',
                                      throttle_duration_sec=5.0)
        pos = self.reward.estimator.positions()
        if pos is None:
            self.get_logger().warning(f'not every object seen yet: {sorted(self.reward.estimates)}',
                                      throttle_duration_sec=5.0)
            return
        pa = PoseArray()
        pa.header.stamp, pa.header.frame_id = ns_to_stamp(stamp_ns), T.WORLD_FRAME
        for c in OBJECT_COLOURS:
            p = Pose()
            p.position.x, p.position.y, p.position.z = (float(v) for v in pos[c])
            p.orientation.w = 1.0
            pa.poses.append(p)
        self.poses_pub.publish(pa)
        if terms is not None:
            self.terms_pub.publish(named_vector_msg(list(REWARD_TERMS), [terms[k] for k in REWARD_TERMS],
                                                    stamp_ns, T.WORLD_FRAME))
            self.ticks += 1


NODE_PARAMS = {'pixel_reward': Params}


def main(args=None):
    sys.exit(spin_node(PixelRewardNode, args=args))
