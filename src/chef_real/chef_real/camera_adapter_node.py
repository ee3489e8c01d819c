"""camera_adapter: full-resolution driver images -> the contract's 128x128 benchmark camera images.

For each camera in `cameras`: subscribes camera/<c>/driver/image_raw (rgb8 or bgr8 from the Basler
driver), undistorts, crops to the benchmark's field of view and resizes (chef_real.cameras.
CameraRectifier, calibration from `cameras_file`), and publishes camera/<c>/image_raw (rgb8, frame
<c>_optical_frame, the driver's stamp) and camera/<c>/camera_info (the output intrinsics).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import List

import numpy as np
from rclpy.node import Node

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.params import declare_params
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, image_to_msg, msg_to_image, spin_node,
    stamp_to_ns,
)
from chef_contract.spec import CAMERA_NAMES
from chef_real.cameras import CameraCalibration, CameraRectifier, load_cameras


@dataclass
class Params:
    cameras_file: str = field_('', help='config/real/cameras.yaml (absolute path)')
    cameras: List[str] = field_(default_factory=lambda: list(CAMERA_NAMES), help='cameras to adapt')


def camera_info_msg(cal: CameraCalibration, stamp_ns: int):
    """sensor_msgs/CameraInfo of the rectified output image (no distortion left)."""
    from sensor_msgs.msg import CameraInfo

    from chef_contract.ros import ns_to_stamp
    k = cal.output_k
    m = CameraInfo()
    m.header.stamp, m.header.frame_id = ns_to_stamp(stamp_ns), T.camera_frame(cal.name)
    m.width = m.height = cal.output_size_px
    m.distortion_model = 'plumb_bob'
    m.d = [0.0] * 5
    m.k = [float(v) for v in k.reshape(-1)]
    m.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    m.p = [float(v) for v in np.c_[k, np.zeros(3)].reshape(-1)]
    return m


class CameraAdapter(Node):
    def __init__(self, **kwargs):
        super().__init__('camera_adapter', **kwargs)
        self.p = declare_params(self, Params)
        if not self.p.cameras_file:
            raise ValueError('cameras_file is not set (config/real/cameras.yaml)')
        cals = load_cameras(self.p.cameras_file)
        unknown = [c for c in self.p.cameras if c not in cals]
        if unknown:
            raise ValueError(f'{self.p.cameras_file} has no calibration for {unknown}')
        self.rectifiers = {c: CameraRectifier(cals[c]) for c in self.p.cameras}
        self.image_pubs = {c: create_contract_publisher(self, T.image_topic(c)) for c in self.p.cameras}
        self.info_pubs = {c: create_contract_publisher(self, T.camera_info_topic(c)) for c in self.p.cameras}
        self.frames = {c: 0 for c in self.p.cameras}
        for c in self.p.cameras:
            create_contract_subscription(self, T.camera_driver_image_topic(c),
                                         lambda msg, cam=c: self._on_image(cam, msg))
        for c, r in self.rectifiers.items():
            self.get_logger().info(f'{c}: crop {r.cal.crop_px} -> {r.cal.output_size_px} px, '
                                   f'fovy {r.cal.fovy_deg:.2f} deg')

    def _on_image(self, cam: str, msg):
        try:
            img = msg_to_image(msg)
            out = self.rectifiers[cam](np.asarray(img))
        except ValueError as exc:
            self.get_logger().error(f'{cam}: {exc}', throttle_duration_sec=5.0)
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        self.image_pubs[cam].publish(image_to_msg(out, stamp_ns, T.camera_frame(cam)))
        self.info_pubs[cam].publish(camera_info_msg(self.rectifiers[cam].cal, stamp_ns))
        self.frames[cam] += 1


NODE_PARAMS = {'camera_adapter': Params}


def main(args=None):
    sys.exit(spin_node(CameraAdapter, args=args))
