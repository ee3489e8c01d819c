"""Camera calibration math and the pixel object estimator on real MuJoCo renders."""

import numpy as np
import pytest

from chef_bringup.workspace import workspace_root
from chef_contract.config import ConfigError
from chef_contract.spec import POLICY_CAMERAS
from chef_real.cameras import CameraCalibration, CameraRectifier, crop_for_fovy, load_cameras, triangulate
from chef_real.pixel_objects import PixelObjectEstimator, segment

from scenes import render

CAMS = load_cameras(workspace_root() / 'config' / 'real' / 'cameras.yaml')


def test_rectifier_removes_distortion_crops_and_scales_intrinsics():
    import cv2
    k = np.array([[700.0, 0, 330.2], [0, 702.0, 238.7], [0, 0, 1]])
    dist = np.array([-0.25, 0.08, 0.001, -0.0005, 0.0])
    crop = crop_for_fovy(k, (640, 480), 35.0)
    cal = CameraCalibration('cam', (640, 480), k, dist, crop, 64, np.eye(4))
    assert abs(cal.fovy_deg - 35.0) < 0.1
    # dots at known 3-D points, drawn where the DISTORTED lens puts them in the driver image
    pts = np.array([[x, y, 1.0] for x in np.linspace(-0.25, 0.25, 5) for y in np.linspace(-0.25, 0.25, 5)])
    uv_d, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k, dist)
    img = np.zeros((480, 640, 3), np.uint8)
    for u, v in uv_d.reshape(-1, 2):
        cv2.circle(img, (int(round(u)), int(round(v))), 9, (255, 255, 255), -1)
    out = CameraRectifier(cal)(img)
    assert out.shape == (64, 64, 3)
    expected = cal.project(pts)                   # ideal pinhole with the output intrinsics
    gray = out[..., 0] > 100
    n, labels, stats, cents = cv2.connectedComponentsWithStats(gray.astype(np.uint8))
    found = cents[1:]
    inside = [(u, v) for u, v in expected if 3 < u < 60 and 3 < v < 60]
    assert len(inside) >= 9
    for u, v in inside:                            # every visible dot lands where the pinhole model says
        assert np.min(np.hypot(found[:, 0] - u, found[:, 1] - v)) < 0.6


def test_bad_calibration_files_fail_clearly(tmp_path):
    (tmp_path / 'c.yaml').write_text('image_width: 100\n')
    (tmp_path / 'cams.yaml').write_text('cameras:\n  a: {driver_calibration: c.yaml, crop_px: [0, 0, 10, 10]}\n')
    with pytest.raises(ConfigError, match='missing or malformed'):
        load_cameras(tmp_path / 'cams.yaml')
    (tmp_path / 'cams.yaml').write_text('cameras:\n  a: {driver_calibraton: c.yaml}\n')
    with pytest.raises(ConfigError, match='driver_calibration'):
        load_cameras(tmp_path / 'cams.yaml')


def test_triangulation_inverts_projection():
    cams = [CAMS[c] for c in POLICY_CAMERAS]
    p = np.array([0.63, -0.04, 0.11])
    q, gap = triangulate(cams, [c.project(p)[0] for c in cams])
    np.testing.assert_allclose(q, p, atol=1e-9)
    assert gap < 1e-9


BOXES = {'red': (np.array([0.62, 0.05, 0.0748]), 0.025), 'green': (np.array([0.53, -0.07, 0.0748]), 0.025),
         'blue': (np.array([0.67, -0.04, 0.0748]), 0.025)}


def test_objects_triangulated_from_mujoco_renders_of_the_calibrated_cameras():
    cams = {c: CAMS[c] for c in POLICY_CAMERAS}
    images = render(cams, BOXES)
    for img in images.values():
        assert set(segment(img)) == {'red', 'green', 'blue'}
    est = PixelObjectEstimator(CAMS).update(images)
    for colour, (pos, _) in BOXES.items():
        assert est[colour].method == 'stereo'
        assert np.linalg.norm(est[colour].position_m - pos) < 0.01, (colour, est[colour].position_m)


def test_red_on_blue_is_one_stack_high_and_occlusion_of_the_bottom_is_corrected():
    cams = {c: CAMS[c] for c in POLICY_CAMERAS}
    boxes = dict(BOXES, red=(np.array([0.67, -0.04, 0.1248]), 0.025))
    est = PixelObjectEstimator(CAMS)
    est.update(render(cams, boxes))
    pos = est.positions()
    dz = pos['red'][2] - pos['blue'][2]
    assert abs(dz - 0.05) < 0.006, dz
    assert np.linalg.norm(pos['red'][:2] - pos['blue'][:2]) < 0.01


def test_estimates_are_held_then_stale_when_objects_disappear():
    cams = {c: CAMS[c] for c in POLICY_CAMERAS}
    est = PixelObjectEstimator(CAMS)
    est.update(render(cams, BOXES))
    empty = render(cams, {})
    for i in range(est.c.stale_after_updates):
        e = est.update(empty)
    assert e['red'].stale and e['red'].method == 'stale'
    np.testing.assert_allclose(e['red'].position_m, est.estimates['red'].position_m)


def test_binned_driver_images_give_the_same_contract_image():
    """A driver that bins b x b (camera_info binning_x/y; the MuJoCo emulator's cameras) is rectified
    onto the same 128 px output and intrinsics as the full frame; any other size is refused."""
    cal = load_cameras(workspace_root() / 'config' / 'real' / 'cameras.yaml')['basket_front_left']
    w, h = cal.driver_size_px
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    full = np.stack([127 + 120 * np.sin(xx / 97.0), 127 + 120 * np.cos(yy / 83.0),
                     127 + 100 * np.sin((xx + yy) / 151.0)], -1).astype(np.uint8)
    rect = CameraRectifier(cal)
    ref = rect(full).astype(np.float64)
    for b in (4, 8):
        binned = full.reshape(h // b, b, w // b, b, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        out = rect(binned)
        assert out.shape == (cal.output_size_px, cal.output_size_px, 3)
        assert np.abs(out - ref).mean() < 3.0, b
    with pytest.raises(ValueError, match='binning'):
        rect(full[:1199:7, :1919:7])
