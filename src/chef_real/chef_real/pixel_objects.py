"""Red, green and blue object positions from the two front cameras (ROS-free, OpenCV + numpy).

    segment(image)              -> per colour, the largest blob of that hue (centroid, area, box)
    PixelObjectEstimator.update -> per colour, a 3-D position in base_link: the viewing rays of the
                                   blob centroids in both cameras intersected by least squares
                                   (chef_real.cameras.triangulate), minus a calibrated bias

A blob centroid is the centre of the *visible surface*, which sits nearer the camera than the
object's centre; each front camera looks down at ~26 deg from ~1 m, so the triangulated point is
biased up and towards the cameras by a few millimetres. `surface_bias_m` (base_link, m) is subtracted;
its default was measured in sim against ground truth (bench/bench_pixel_reward.py) and should be
re-measured on a real cell with a ruler or a calibration object.

Blobs cut by the image border (an object lifted out of view, a long object near the edge) are
used only when there are not two whole views (the estimate is then flagged `clipped`). When a colour
is visible in one camera only, its position comes from that camera's ray intersected with the
horizontal plane at the colour's last estimated height (or resting height on the basket floor);
when it is visible in none, the last estimate is held, and marked stale after a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from chef_contract.config import field_
from chef_contract.spec import BASKET_CENTER_M, OBJECT_COLOURS, POLICY_CAMERAS
from chef_real.cameras import CameraCalibration, triangulate


@dataclass
class SegmentationConfig:
    """HSV thresholds (OpenCV scale: H 0..179, S and V 0..255) and blob filters."""

    min_saturation: int = field_(120, help='pixels less saturated than this are background', min=0, max=255)
    min_value: int = field_(40, help='pixels darker than this are background', min=0, max=255)
    red_hue: List[int] = field_(default_factory=lambda: [170, 10], help='red hue range (wraps at 180)')
    green_hue: List[int] = field_(default_factory=lambda: [40, 85], help='green hue range')
    blue_hue: List[int] = field_(default_factory=lambda: [100, 135], help='blue hue range')
    min_area_px: int = field_(4, help='smaller blobs are noise (pixels of the 128x128 image)', min=1)


@dataclass
class EstimatorConfig:
    cameras: List[str] = field_(default_factory=lambda: list(POLICY_CAMERAS),
                                help='cameras used for triangulation (the two front cameras)')
    surface_bias_m: List[float] = field_(default_factory=lambda: [0.0, 0.0, 0.0],
                                         help='mean (triangulated - true) centre offset to subtract, base_link m')
    stacked_bottom_offset_m: float = field_(
        0.005, help='added to the height of an object with another one on top of it: the top object '
                    'hides its upper part, so its visible centroid is low (measured in sim)', min=0.0, max=0.03)
    max_ray_gap_m: float = field_(0.03, help='rms ray distance above which a stereo estimate is flagged '
                                             'inconsistent', min=0.0)
    resting_height_m: float = field_(BASKET_CENTER_M[2] + 0.025,
                                     help='height assumed for a colour seen by one camera and never before')
    stale_after_updates: int = field_(10, help='updates without a sighting before an estimate is stale', min=1)
    segmentation: SegmentationConfig = field_(default_factory=SegmentationConfig, help='colour thresholds')


@dataclass
class Blob:
    centroid_uv: np.ndarray        # (u, v) output pixels, u right, v down
    area_px: int
    bbox: Tuple[int, int, int, int]   # x, y, w, h
    image_size: Tuple[int, int] = (0, 0)   # (width, height) of the image it was found in

    @property
    def touches_border(self) -> bool:
        """Cut by the image edge: its centroid is not the object's (e.g. lifted out of view)."""
        x, y, w, h = self.bbox
        return x <= 0 or y <= 0 or x + w >= self.image_size[0] or y + h >= self.image_size[1]


@dataclass
class ObjectEstimate:
    colour: str
    position_m: np.ndarray                 # base_link
    cameras: Tuple[str, ...] = ()          # cameras that saw it in this update
    ray_gap_m: float = 0.0
    updates_since_seen: int = 0
    stale: bool = False
    extra: Dict[str, float] = field(default_factory=dict)

    @property
    def method(self) -> str:
        if self.stale:
            return 'stale'
        return {2: 'stereo', 1: 'mono', 0: 'held'}.get(len(self.cameras), 'stereo')


def hue_mask(hsv: np.ndarray, hue: Sequence[int], cfg: SegmentationConfig) -> np.ndarray:
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    lo, hi = int(hue[0]), int(hue[1])
    in_hue = (h >= lo) & (h <= hi) if lo <= hi else (h >= lo) | (h <= hi)
    return in_hue & (s >= cfg.min_saturation) & (v >= cfg.min_value)


def segment(image_rgb: np.ndarray, cfg: Optional[SegmentationConfig] = None) -> Dict[str, Blob]:
    """Largest blob of each object colour in an HxWx3 uint8 RGB image."""
    import cv2
    cfg = cfg or SegmentationConfig()
    img = np.ascontiguousarray(image_rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 uint8 RGB image, got {img.dtype} {img.shape}')
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    out: Dict[str, Blob] = {}
    for colour, hue in (('red', cfg.red_hue), ('green', cfg.green_hue), ('blue', cfg.blue_hue)):
        mask = hue_mask(hsv, hue, cfg).astype(np.uint8)
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            continue
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[best, cv2.CC_STAT_AREA])
        if area < cfg.min_area_px:
            continue
        x, y, w, h = (int(stats[best, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP,
                                                    cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        out[colour] = Blob(np.asarray(centroids[best], np.float64), area, (x, y, w, h),
                           (img.shape[1], img.shape[0]))
    return out


def ray_plane_z(cam: CameraCalibration, uv: Sequence[float], z: float) -> Optional[np.ndarray]:
    o, d = cam.ray(uv)
    if abs(d[2]) < 1e-6:
        return None
    t = (z - o[2]) / d[2]
    return o + t * d if t > 0 else None


class PixelObjectEstimator:
    """Keeps one position estimate per colour, updated from a set of synchronous images."""

    def __init__(self, cameras: Mapping[str, CameraCalibration], config: Optional[EstimatorConfig] = None):
        self.c = config or EstimatorConfig()
        missing = [n for n in self.c.cameras if n not in cameras]
        if missing:
            raise ValueError(f'no calibration for cameras {missing}')
        self.cams = {n: cameras[n] for n in self.c.cameras}
        self.bias = np.asarray(self.c.surface_bias_m, np.float64)
        self.estimates: Dict[str, ObjectEstimate] = {}
        self.last_blobs: Dict[str, Dict[str, Blob]] = {}

    def reset(self):
        self.estimates.clear()

    def update(self, images: Mapping[str, np.ndarray]) -> Dict[str, ObjectEstimate]:
        """One tick: images {camera: HxWx3 RGB} of (at least) the configured cameras."""
        blobs = {n: segment(images[n], self.c.segmentation) for n in self.cams}
        self.last_blobs = blobs
        for colour in OBJECT_COLOURS:
            seen = [n for n in self.cams if colour in blobs[n]]
            whole = [n for n in seen if not blobs[n][colour].touches_border]
            clipped = len(whole) < 2 and len(seen) >= 2
            if not clipped and whole:
                seen = whole
            prev = self.estimates.get(colour)
            est: Optional[ObjectEstimate] = None
            if len(seen) >= 2:
                p, gap = triangulate([self.cams[n] for n in seen], [blobs[n][colour].centroid_uv for n in seen])
                est = ObjectEstimate(colour, p - self.bias, tuple(seen), gap)
                if clipped:
                    est.extra['clipped'] = 1.0
                if gap > self.c.max_ray_gap_m:
                    # The two centroids are far from one 3-D point: an elongated object seen from
                    # two sides, or a mis-segmentation. Still the best estimate; flagged.
                    est.extra['inconsistent'] = 1.0
            if est is None and len(seen) == 1:
                z = prev.position_m[2] if prev is not None else self.c.resting_height_m
                p = ray_plane_z(self.cams[seen[0]], blobs[seen[0]][colour].centroid_uv, z + self.bias[2])
                if p is not None:
                    p = p - self.bias
                    est = ObjectEstimate(colour, p, tuple(seen))
            if est is None:
                if prev is None:
                    continue
                held = prev.updates_since_seen + 1
                est = ObjectEstimate(colour, prev.position_m.copy(), (), prev.ray_gap_m, held,
                                     stale=held >= self.c.stale_after_updates)
            self.estimates[colour] = est
        return dict(self.estimates)

    def positions(self) -> Optional[Dict[str, np.ndarray]]:
        """{colour: position} once every colour has been seen at least once, else None.

        An object with another one resting on it (x-y within 3 cm, 2-8 cm lower) is raised by
        `stacked_bottom_offset_m` (occlusion of its top face)."""
        if not all(c in self.estimates for c in OBJECT_COLOURS):
            return None
        pos = {c: self.estimates[c].position_m.copy() for c in OBJECT_COLOURS}
        out = {c: p.copy() for c, p in pos.items()}
        for low in OBJECT_COLOURS:
            for high in OBJECT_COLOURS:
                if low == high:
                    continue
                d = pos[high] - pos[low]
                if np.linalg.norm(d[:2]) < 0.03 and 0.02 < d[2] < 0.08:
                    out[low][2] = pos[low][2] + self.c.stacked_bottom_offset_m
        return out
