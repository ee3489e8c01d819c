"""Camera calibration of a real cell (ROS-free): driver intrinsics, crop to the benchmark's field of
view, 128x128 output intrinsics, extrinsics in `base_link`, projection and triangulation.

The file (config/real/cameras.yaml, see docs/real_cell.md) and its schema: chef_contract.calibration.

The camera adapter cuts `crop_px` out of the (undistorted) driver image and resizes it to
`output_size_px`; choosing the crop height as 2 f tan(fovy / 2) reproduces the benchmark camera's
vertical field of view (spec §B.3) on any lens. The pixel reward node projects and triangulates
with the *output* intrinsics, so it works on exactly the images the policy sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from chef_contract.calibration import CamerasConfig, camera_poses
from chef_contract.config import ConfigError, load_config
from chef_real.transforms import pose_matrix, quat_to_matrix

# MuJoCo cameras look along their -z with +y up; ROS optical frames look along +z with +y down.
MUJOCO_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


@dataclass
class CameraCalibration:
    """One calibrated camera as the rest of the stack sees it (output = contract image)."""

    name: str
    driver_size_px: Tuple[int, int]            # (width, height)
    driver_k: np.ndarray                       # 3x3, driver pixels
    distortion: np.ndarray                     # plumb_bob coefficients (k1 k2 p1 p2 k3)
    crop_px: Tuple[int, int, int, int]         # x0, y0, w, h in driver pixels
    output_size_px: int
    base_from_optical: np.ndarray              # 4x4 pose of the optical frame in base_link

    # --- intrinsics -------------------------------------------------------------------------
    @property
    def crop_k(self) -> np.ndarray:
        """Intrinsics of the undistorted crop (driver pixel scale)."""
        x0, y0, _, _ = self.crop_px
        k = self.driver_k.copy()
        k[0, 2] -= x0
        k[1, 2] -= y0
        return k

    @property
    def output_k(self) -> np.ndarray:
        """Intrinsics of the square output image (pixel-centre convention of cv2.resize)."""
        _, _, w, h = self.crop_px
        sx, sy = self.output_size_px / w, self.output_size_px / h
        k = self.crop_k
        out = np.eye(3)
        out[0, 0], out[1, 1] = k[0, 0] * sx, k[1, 1] * sy
        out[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
        out[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
        out[0, 1] = k[0, 1] * sx
        return out

    @property
    def fovy_deg(self) -> float:
        """Vertical field of view of the output image."""
        k = self.output_k
        return math.degrees(2 * math.atan(0.5 * self.output_size_px / k[1, 1]))

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(np.abs(self.distortion) > 0))

    # --- geometry in base_link ----------------------------------------------------------------
    @property
    def position_m(self) -> np.ndarray:
        return self.base_from_optical[:3, 3].copy()

    @property
    def optical_axis(self) -> np.ndarray:
        return self.base_from_optical[:3, 2].copy()

    def projection_matrix(self) -> np.ndarray:
        """3x4 P = K [R | t] mapping base_link points to output pixels."""
        optical_from_base = np.linalg.inv(self.base_from_optical)
        return self.output_k @ optical_from_base[:3, :]

    def project(self, points_m: np.ndarray) -> np.ndarray:
        """Nx3 base_link points -> Nx2 output pixel coordinates (u right, v down)."""
        pts = np.atleast_2d(np.asarray(points_m, np.float64))
        h = np.c_[pts, np.ones(len(pts))] @ self.projection_matrix().T
        return h[:, :2] / h[:, 2:3]

    def ray(self, uv: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """Output pixel -> (origin, unit direction) of its viewing ray in base_link."""
        d_cam = np.linalg.solve(self.output_k, np.array([uv[0], uv[1], 1.0]))
        d = self.base_from_optical[:3, :3] @ d_cam
        return self.position_m, d / np.linalg.norm(d)

    # --- constructors -----------------------------------------------------------------------
    @classmethod
    def ideal(cls, name: str, position_m: Sequence[float], rotation_optical: np.ndarray,
              fovy_deg: float, size_px: int) -> 'CameraCalibration':
        """A distortion-free pinhole camera with square pixels (the sim cameras)."""
        f = 0.5 * size_px / math.tan(math.radians(fovy_deg) / 2)
        c = (size_px - 1) / 2.0
        k = np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])
        return cls(name=name, driver_size_px=(size_px, size_px), driver_k=k, distortion=np.zeros(5),
                   crop_px=(0, 0, size_px, size_px), output_size_px=size_px,
                   base_from_optical=pose_matrix(position_m, rotation_optical))

    @classmethod
    def from_mujoco(cls, name: str, cam_xpos, cam_xmat, fovy_deg: float, size_px: int):
        """A MuJoCo camera (world pose from MjData.cam_xpos/cam_xmat) as an ideal calibration."""
        r = np.asarray(cam_xmat, np.float64).reshape(3, 3) @ MUJOCO_TO_OPTICAL
        return cls.ideal(name, np.asarray(cam_xpos, np.float64), r, fovy_deg, size_px)


def read_camera_info_yaml(path: Path) -> dict:
    """A camera_info_manager calibration file -> {'width', 'height', 'k' 3x3, 'd', 'model'}."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'camera calibration {path}: {exc}') from None
    try:
        k = np.array(data['camera_matrix']['data'], np.float64).reshape(3, 3)
        d = np.array(data['distortion_coefficients']['data'], np.float64).reshape(-1)
        return {'width': int(data['image_width']), 'height': int(data['image_height']), 'k': k, 'd': d,
                'model': data.get('distortion_model', 'plumb_bob'), 'name': data.get('camera_name', '')}
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f'camera calibration {path}: missing or malformed field ({exc})') from None


def load_cameras(path) -> Dict[str, CameraCalibration]:
    """config/real/cameras.yaml -> {camera name: CameraCalibration}; bad files raise ConfigError."""
    path = Path(path)
    cfg = load_config(CamerasConfig, path)
    camera_poses(cfg)                                   # every pose well-formed (the recorder's check too)
    out: Dict[str, CameraCalibration] = {}
    for name, e in cfg.cameras.items():
        info = read_camera_info_yaml(path.parent / e.driver_calibration)
        if info['model'] not in ('plumb_bob', 'rational_polynomial'):
            raise ConfigError(f'{name}: distortion model {info["model"]!r} not supported')
        x0, y0, w, h = (int(v) for v in e.crop_px)
        if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > info['width'] or y0 + h > info['height']:
            raise ConfigError(f'{name}: crop {e.crop_px} does not fit the {info["width"]}x{info["height"]} '
                              'driver image')
        out[name] = CameraCalibration(
            name=name, driver_size_px=(info['width'], info['height']), driver_k=info['k'],
            distortion=info['d'], crop_px=(x0, y0, w, h), output_size_px=cfg.output_size_px,
            base_from_optical=pose_matrix(e.position_m, quat_to_matrix(e.quaternion_wxyz)))
    return out


def crop_for_fovy(k: np.ndarray, size_px: Tuple[int, int], fovy_deg: float) -> Tuple[int, int, int, int]:
    """Square crop (x0, y0, w, h) centred on the principal point whose height spans `fovy_deg`."""
    side = int(round(2 * k[1, 1] * math.tan(math.radians(fovy_deg) / 2)))
    width, height = size_px
    if side > min(width, height):
        raise ValueError(f'a {fovy_deg} deg field of view needs {side} px; the image has {size_px}')
    x0 = int(round(k[0, 2] + 0.5 - side / 2))
    y0 = int(round(k[1, 2] + 0.5 - side / 2))
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return x0, y0, side, side


def triangulate(cams: Sequence[CameraCalibration], uvs: Sequence[Sequence[float]]) -> Tuple[np.ndarray, float]:
    """Least-squares intersection of the pixels' viewing rays -> (point in base_link, rms ray gap m).

    Midpoint method generalised to N rays: the point minimising the sum of squared distances to
    every ray. The returned residual is the rms distance of the point to the rays (a consistency
    check: a wrong pairing of blobs gives a large gap).
    """
    a = np.zeros((3, 3))
    b = np.zeros(3)
    rays: List[Tuple[np.ndarray, np.ndarray]] = []
    for cam, uv in zip(cams, uvs):
        o, d = cam.ray(uv)
        m = np.eye(3) - np.outer(d, d)
        a += m
        b += m @ o
        rays.append((o, d))
    p = np.linalg.solve(a, b)
    gaps = [np.linalg.norm((np.eye(3) - np.outer(d, d)) @ (p - o)) for o, d in rays]
    return p, float(math.sqrt(np.mean(np.square(gaps))))


def nominal_crop_info(name: str, cam: CameraCalibration) -> Optional[str]:
    """One line describing a calibration (used by the description generator's report)."""
    return (f'{name}: driver {cam.driver_size_px[0]}x{cam.driver_size_px[1]}, crop {cam.crop_px}, '
            f'output fovy {cam.fovy_deg:.2f} deg, position {np.round(cam.position_m, 3).tolist()}')


class CameraRectifier:
    """Driver image -> contract image: undistort (if the calibration has distortion), crop, resize.

    Distortion is removed at driver resolution inside the crop (cv2 remap maps precomputed once),
    then the crop is downsampled with INTER_AREA (anti-aliased), so the output is a distortion-free
    pinhole image with intrinsics `cal.output_k`, like the sim's cameras.
    """

    def __init__(self, cal: CameraCalibration):
        import cv2
        self.cal = cal
        x0, y0, w, h = cal.crop_px
        self._maps = None
        if cal.has_distortion:
            self._maps = cv2.initUndistortRectifyMap(cal.driver_k, cal.distortion, np.eye(3), cal.crop_k,
                                                     (w, h), cv2.CV_16SC2)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        import cv2
        cal = self.cal
        width, height = cal.driver_size_px
        if image.ndim != 3:
            raise ValueError(f'{cal.name}: driver image has shape {image.shape}, expected H x W x 3')
        binning = driver_binning(cal, image.shape[1], image.shape[0])
        if binning > 1:
            return self._binned(image, binning)
        x0, y0, w, h = cal.crop_px
        if self._maps is not None:
            crop = cv2.remap(image, self._maps[0], self._maps[1], cv2.INTER_LINEAR)
        else:
            crop = image[y0:y0 + h, x0:x0 + w]
        n = cal.output_size_px
        if (w, h) == (n, n):
            return np.ascontiguousarray(crop)
        return cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA)

    def _binned(self, image: np.ndarray, binning: int) -> np.ndarray:
        """A driver image binned b x b (camera_info binning_x/y = b; the calibration stays at full
        resolution, as ROS defines it): the same output pixels sampled from the binned image by the
        exact affine map (bilinear), so the output intrinsics are `cal.output_k` whatever b is."""
        import cv2
        cal = self.cal
        if cal.has_distortion:
            raise ValueError(f'{cal.name}: binned driver images are only supported without lens distortion')
        x0, y0, w, h = cal.crop_px
        n = cal.output_size_px
        # output pixel u -> full-resolution x = x0 + (u + 0.5) w / n - 0.5 -> binned (x + 0.5) / b - 0.5
        m = np.array([[w / (n * binning), 0.0, (x0 + 0.5 * w / n) / binning - 0.5],
                      [0.0, h / (n * binning), (y0 + 0.5 * h / n) / binning - 0.5]])
        return cv2.warpAffine(image, m, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)


def driver_binning(cal: CameraCalibration, width: int, height: int) -> int:
    """The integer binning b with (width, height) = calibration size / b; ValueError if there is none."""
    full_w, full_h = cal.driver_size_px
    for b in range(1, 17):
        if full_w % b == 0 and full_h % b == 0 and (full_w // b, full_h // b) == (width, height):
            return b
    raise ValueError(f'{cal.name}: driver image is {width}x{height}, calibration says {full_w}x{full_h} '
                     '(or an integer binning of it)')
