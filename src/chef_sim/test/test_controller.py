"""Workspace zeroing (spec §B.5) and Cartesian velocity tracking of the simulated Sawyer."""

import math

import numpy as np
import pytest

from chef_contract.spec import MAX_LINEAR_SPEED_MPS, WORKSPACE_HIGH_M, WORKSPACE_LOW_M
from chef_sim.controller import scale_by_norm, workspace_zeroing
from chef_sim.env import RgbStackingEnv, SimConfig

INSIDE = np.array([0.6, 0.0, 0.17])


def test_zeroing_not_clipping():
    cmd = np.array([0.05, -0.03, 0.02, 0.5])
    out, mask = workspace_zeroing(cmd, INSIDE, 0.0)
    assert np.array_equal(out, cmd) and not mask.any()
    above = INSIDE.copy()
    above[2] = WORKSPACE_HIGH_M[2] + 0.001
    out, mask = workspace_zeroing(cmd, above, 0.0)
    assert out.tolist() == [0.05, -0.03, 0.0, 0.5]          # +z zeroed, others untouched
    assert mask.tolist() == [False, False, True, False]
    out, _ = workspace_zeroing(np.array([0.05, -0.03, -0.02, 0.5]), above, 0.0)
    assert out[2] == -0.02                                   # moving back inside is allowed


@pytest.mark.parametrize('axis', [0, 1, 2])
def test_zeroing_every_face(axis):
    for side, limit, sign in ((0, WORKSPACE_LOW_M, -1.0), (1, WORKSPACE_HIGH_M, 1.0)):
        pos = INSIDE.copy()
        pos[axis] = limit[axis] + sign * 1e-4
        cmd = np.zeros(4)
        cmd[axis] = sign * 0.07
        out, mask = workspace_zeroing(cmd, pos, 0.0)
        assert out[axis] == 0.0 and mask[axis]
        cmd[axis] = -sign * 0.07
        out, mask = workspace_zeroing(cmd, pos, 0.0)
        assert out[axis] == cmd[axis] and not mask[axis]


def test_wrist_limit_is_sign_reversed():
    # state = -right_j6; beyond +pi/2 a positive yaw (which lowers right_j6) is zeroed
    out, mask = workspace_zeroing(np.array([0, 0, 0, 1.0]), INSIDE, -math.pi / 2 - 0.01)
    assert out[3] == 0.0 and mask[3]
    out, _ = workspace_zeroing(np.array([0, 0, 0, -1.0]), INSIDE, -math.pi / 2 - 0.01)
    assert out[3] == -1.0
    out, mask = workspace_zeroing(np.array([0, 0, 0, -1.0]), INSIDE, math.pi / 2 + 0.01)
    assert out[3] == 0.0 and mask[3]
    out, mask = workspace_zeroing(np.array([0, 0, 1.0, 1.0]), INSIDE * [1, 1, 0], math.pi,
                                  enforce_box=False, enforce_wrist=False)
    assert not mask.any()


def test_scale_by_norm_keeps_direction():
    v = scale_by_norm(np.array([0.07, 0.07, 0.0]), MAX_LINEAR_SPEED_MPS)
    assert np.linalg.norm(v) == pytest.approx(0.07)
    assert v[0] == pytest.approx(v[1])
    assert np.array_equal(scale_by_norm(np.array([0.01, 0.0, 0.0]), 0.07), [0.01, 0.0, 0.0])


@pytest.fixture(scope='module')
def env():
    e = RgbStackingEnv(SimConfig(render_images=False, preset='fast'))
    yield e
    e.close()


def _pinch(info):
    return info['frame']['sawyer/pinch/pose'][:3].astype(float)


def _down_error_deg(info):
    """Angle between the pinch site's z axis and world -z."""
    q = info['frame']['sawyer/pinch/pose'][3:].astype(float)
    w, x, y, z = q
    zaxis = np.array([2 * (x * z + y * w), 2 * (y * z - x * w), 1 - 2 * (x * x + y * y)])
    return math.degrees(math.acos(np.clip(-zaxis[2], -1, 1)))


# Tracking tolerance: after a 0.25 s ramp the TCP speed along the command is within 15 % of the
# commanded speed (the 1e-2 damping of the least-squares solve, as in the benchmark, costs
# 5-12 %), off-axis drift stays below 10 % of it and the gripper within 2 deg of pointing down.
@pytest.mark.parametrize('action', [[0.6, 0, 0], [0, -0.6, 0], [0, 0, 0.6], [0.5, 0.5, 0]])
def test_tracks_commanded_velocity(env, action):
    _, info = env.reset(seed=3)
    # start from the workspace centre, so the box never zeroes the command
    for _ in range(150):
        err = np.array([0.6, 0.0, 0.17]) - _pinch(info)
        if np.linalg.norm(err) < 0.005:
            break
        _, _, _, _, info = env.step(np.r_[np.clip(20 * err, -1, 1), 0, -1])
    a = np.r_[action, 0.0, -1.0]
    for _ in range(5):
        _, _, _, _, info = env.step(a)
    p0 = _pinch(info)
    n = 20
    for _ in range(n):
        _, _, _, _, info = env.step(a)
        assert not info['workspace_zeroed'].any()
        assert _down_error_deg(info) < 2.0
    v = (_pinch(info) - p0) / (n * 0.05)
    want = np.asarray(action, float) * MAX_LINEAR_SPEED_MPS
    want = scale_by_norm(want, MAX_LINEAR_SPEED_MPS)
    along = v @ want / np.linalg.norm(want)
    off = v - along * want / np.linalg.norm(want)
    assert along == pytest.approx(np.linalg.norm(want), rel=0.15)
    assert np.linalg.norm(off) < 0.1 * np.linalg.norm(want)


def test_tracks_yaw_rate(env):
    _, info = env.reset(seed=4)
    start = -0.5 if info['frame']['sawyer/joints/angle'][6] > 0 else 0.5   # towards mid-range
    for _ in range(5):                          # 0.25 s ramp
        _, _, _, _, info = env.step(np.array([0, 0, 0, start, -1.0]))
    q0 = info['frame']['sawyer/joints/angle'][6]
    n = 10
    for _ in range(n):
        _, _, _, _, info = env.step(np.array([0, 0, 0, start, -1.0]))
    dq = info['frame']['sawyer/joints/angle'][6] - q0
    # positive yaw lowers right_j6 (sign-reversed wrist); rate within 15 % of 0.5 rad/s
    assert -dq / (n * 0.05) == pytest.approx(start, rel=0.15)


def test_workspace_zeroing_in_sim_stops_at_the_floor(env):
    _, info = env.reset(seed=5)
    for _ in range(120):
        _, _, _, _, info = env.step(np.array([0.0, 0.0, -1.0, 0.0, -1.0]))
        if info['workspace_zeroed'][2]:
            break
    assert info['workspace_zeroed'][2]
    z = _pinch(info)[2]
    for _ in range(10):
        _, _, _, _, info = env.step(np.array([0.0, 0.0, -1.0, 0.0, -1.0]))
    # once outside the floor face, further -z commands are zeroed: the TCP stays within 1 cm
    assert _pinch(info)[2] > WORKSPACE_LOW_M[2] - 0.01
    assert _pinch(info)[2] == pytest.approx(z, abs=0.01)
