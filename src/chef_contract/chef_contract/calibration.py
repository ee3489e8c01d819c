"""A real cell's camera calibration file (config/real/cameras.yaml): its schema, defined once.

chef_real.cameras reads the whole file (driver intrinsics, crops, projection); the recorder reads
only the camera poses, to write the cell's *calibrated* frame tree as `tf_static` at the head of
every bag (the benchmark's nominal poses when no file is given). ROS-free.

    output_size_px: 128
    cameras:
      basket_front_left:
        driver_calibration: cameras/basket_front_left.yaml   # camera_info_manager YAML, driver pixels
        crop_px: [529, 169, 861, 861]                          # x0, y0, width, height (driver pixels)
        position_m: [0.970, -0.375, 0.285]                     # optical-frame origin in base_link
        quaternion_wxyz: [...]                                 # optical frame (z forward, x right, y down)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

from chef_contract.config import ConfigError, field_, load_config
from chef_contract.topics import StaticTransform, static_transforms


@dataclass
class CameraEntry:
    driver_calibration: str = field_('', help='camera_info_manager YAML at driver resolution, relative '
                                              'to the directory of cameras.yaml')
    crop_px: List[int] = field_(default_factory=lambda: [0, 0, 0, 0],
                                help='x0, y0, width, height of the crop in driver pixels')
    position_m: List[float] = field_(default_factory=lambda: [0.0, 0.0, 0.0],
                                     help='optical frame origin in base_link (m)')
    quaternion_wxyz: List[float] = field_(default_factory=lambda: [1.0, 0.0, 0.0, 0.0],
                                          help='optical frame orientation in base_link')


@dataclass
class CamerasConfig:
    output_size_px: int = field_(128, help='side of the square contract image', min=16, max=1024)
    cameras: Dict[str, CameraEntry] = field_(default_factory=dict, help='per camera calibration')


def camera_poses(cfg: CamerasConfig) -> Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]]:
    """{camera: (position_m, quaternion_xyzw)} of every calibrated camera; a malformed pose raises
    ConfigError."""
    out = {}
    for name, e in cfg.cameras.items():
        if len(e.position_m) != 3 or len(e.quaternion_wxyz) != 4:
            raise ConfigError(f'{name}: position_m needs 3 values and quaternion_wxyz 4')
        w, x, y, z = (float(v) for v in e.quaternion_wxyz)
        if (w * w + x * x + y * y + z * z) < 1e-12:
            raise ConfigError(f'{name}: quaternion_wxyz is zero')
        out[name] = (tuple(float(v) for v in e.position_m), (x, y, z, w))
    return out


def calibrated_static_transforms(path) -> Tuple[StaticTransform, ...]:
    """base_link -> <camera>_optical_frame at the poses of the calibration file `path` (every camera
    it lists); bad files raise ConfigError."""
    poses = camera_poses(load_config(CamerasConfig, path))
    if not poses:
        raise ConfigError(f'{path}: no cameras')
    return static_transforms(tuple(poses), poses=poses)
