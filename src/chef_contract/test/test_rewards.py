"""Reward terms against hand-computed cases of spec §B.10-B.11 (pure numpy, no physics)."""

import math

import numpy as np
import pytest

from chef_contract.spec import REWARD_STAGE_TERMS
from chef_contract import rewards as R

BLUE = np.array([0.60, 0.00, 0.075])          # m, a blue object resting in the basket


def terms(red, blue=BLUE, pinch=None, finger=0.0, grasp=1):
    red = np.asarray(red, float)
    pinch = red + [0.0, 0.0, 0.10] if pinch is None else np.asarray(pinch, float)
    return R.reward_terms(red, blue, pinch, finger, grasp)


def test_shaping_weights_match_spec():
    # w = artanh(sqrt(0.95)) / margin: 14.52, 10.89, 43.57 1/m for 0.15, 0.20, 0.05 m (spec §B.10)
    for margin, w in ((0.15, 14.52), (0.20, 10.89), (0.05, 43.57)):
        assert math.atanh(math.sqrt(0.95)) / margin == pytest.approx(w, abs=0.01)
        # 1 - tanh^2 at the margin is 0.05
        assert R.tolerance_reward([margin, 0.0, 0.0], (1e-3,) * 3, margin) == pytest.approx(0.05)


def test_stacked_and_left_gives_full_reward():
    t = terms(BLUE + [0.0, 0.0, 0.04])
    assert t['stack'] == 1.0 and t['stack_leave'] == 1.0 and t['hover'] == 1.0
    assert t['staged'] == pytest.approx(1.0)       # (5 - 1 + 1) / 5


def test_stacked_pinch_not_above_gives_point_eight():
    red = BLUE + [0.0, 0.0, 0.04]
    t = terms(red, pinch=red + [0.0, 0.0, 0.30])       # 20 cm too high: above-term ~0
    assert t['stack'] == 1.0
    assert t['stack_leave'] < 1e-3
    assert t['staged'] == pytest.approx(0.8)           # stage 4 wins: (4 - 1 + 1) / 5


def test_closing_veto():
    """Stage 4 is zero while the gripper reports a grasp while closing (flag 2)."""
    red = BLUE + [0.0, 0.0, 0.04]
    t = terms(red, pinch=red, finger=200.0, grasp=2)
    assert t['stack'] == 0.0 and t['stack_leave'] == 0.0
    assert t['hover'] == 1.0
    assert t['staged'] == pytest.approx(0.6)           # stage 3 wins: (3 - 1 + 1) / 5
    assert terms(red, pinch=red, finger=200.0, grasp=3)['stack'] == 1.0   # opening: no veto


@pytest.mark.parametrize('offset, expected', [
    ((0.029, 0.0, 0.04), 1.0), ((0.031, 0.0, 0.04), 0.0),        # horizontal tolerance 0.03 m
    ((0.0, 0.0, 0.0495), 1.0), ((0.0, 0.0, 0.0505), 0.0),        # vertical 0.04 +- 0.01 m
    ((0.0, 0.0, 0.0305), 1.0), ((0.0, 0.0, 0.0295), 0.0),
    ((0.02, 0.02, 0.04), 1.0), ((0.022, 0.022, 0.04), 0.0),      # |xy| = 0.0311 > 0.03
])
def test_stack_tolerances(offset, expected):
    assert terms(BLUE + offset)['stack'] == expected


@pytest.mark.parametrize('z, lift', [(0.10, 0.0), (0.1048, 0.0), (0.1273, 0.5), (0.1498, 1.0), (0.25, 1.0)])
def test_lift_band(z, lift):
    assert R.lift_shaped(z) == pytest.approx(lift, abs=1e-9)
    # grasped (flag 2) inside the workspace: lift term = 1 * lift * 1
    red = np.array([0.6, 0.0, z])
    t = terms(red, pinch=red, finger=150.0, grasp=2)
    if z <= R.WORKSPACE_CENTER_M[2] + 0.1:
        assert t['lift'] == pytest.approx(lift, abs=1e-9)


def test_lift_needs_red_inside_workspace_ellipsoid():
    red = np.array([0.6 + 0.126, 0.0, 0.16])           # just outside the x half-axis 0.125 m
    assert terms(red, pinch=red, finger=150.0, grasp=2)['lift'] == 0.0
    red = np.array([0.6 + 0.12, 0.0, 0.1698])
    assert terms(red, pinch=red, finger=150.0, grasp=2)['lift'] == 1.0


def test_grasp_term_uses_max_of_fingers_and_flag():
    red = np.array([0.6, 0.0, 0.08])
    # reach = 1 (pinch at red); fingers fully closed without grasp flag: grasp = 0.5 * 1
    t = terms(red, pinch=red, finger=255.0, grasp=1)
    assert t['reach_grasp'] == pytest.approx(0.75)     # (0.5 + 0.5 / 2) * 1
    t = terms(red, pinch=red, finger=100.0, grasp=2)
    assert t['reach_grasp'] == pytest.approx(1.0)
    t = terms(red, pinch=red, finger=0.0, grasp=1)     # open: close_fingers = 1 - tanh^2(w 255) ~0.05
    assert t['reach_grasp'] == pytest.approx(0.5 + 0.05 * 0.5 / 2, abs=1e-3)


def test_reach_below_conditional_threshold_is_halved():
    red = np.array([0.6, 0.0, 0.08])
    pinch = red + [0.05, 0.0, 0.0]                      # reach = 1 - tanh^2(14.52 * 0.05)
    reach = 1 - math.tanh(math.atanh(math.sqrt(0.95)) / 0.15 * 0.05) ** 2
    assert reach < 0.9
    t = terms(red, pinch=pinch, finger=255.0, grasp=2)
    assert t['reach_grasp'] == pytest.approx(0.5 * reach)


def test_hover_needs_red_above_ten_cm():
    assert terms(BLUE + [0.0, 0.0, 0.02])['hover'] == 0.0          # red z 0.095 < 0.10
    t = terms(BLUE + [0.0, 0.0, 0.24])                             # 0.20 m above the target
    assert t['hover'] == pytest.approx(0.05)


def test_staged_reward_threshold_and_fallback():
    zero = {k: 0.0 for k in REWARD_STAGE_TERMS}
    assert R.staged_reward({**zero, 'reach_grasp': 0.005}) == pytest.approx(0.001)
    assert R.staged_reward({**zero, 'reach_grasp': 0.5, 'lift': 0.011}) == pytest.approx((1 + 0.011) / 5)
    assert R.staged_reward({**zero, 'reach_grasp': 0.5, 'lift': 0.01}) == pytest.approx(0.5 / 5)
    assert R.staged_reward({**zero, 'stack_leave': 2.0}) == pytest.approx(1.0)   # clipped to 1


def test_sparse_success_contacts():
    red = BLUE + [0.01, 0.0, 0.05]
    assert R.sparse_success_contacts(red, BLUE, True, False, False)
    assert not R.sparse_success_contacts(red, BLUE, False, False, False)     # not touching blue
    assert not R.sparse_success_contacts(red, BLUE, True, True, False)       # touches the ground
    assert not R.sparse_success_contacts(red, BLUE, True, False, True)       # touches the robot
    assert not R.sparse_success_contacts(BLUE + [0.051, 0, 0.05], BLUE, True, False, False)
    assert not R.sparse_success_contacts(BLUE + [0.0, 0, 0.019], BLUE, True, False, False)


def test_sparse_success_pose_only():
    red = BLUE + [0.0, 0.0, 0.05]
    assert R.sparse_success_pose_only(red, BLUE, red + [0, 0, 0.1], grasp_flag=1)
    assert not R.sparse_success_pose_only(red, BLUE, red + [0, 0, 0.1], grasp_flag=2)
    assert not R.sparse_success_pose_only(red, BLUE, red + [0, 0, 0.02], grasp_flag=1)
    assert not R.sparse_success_pose_only(BLUE + [0.06, 0, 0.05], BLUE, red + [0, 0, 0.1], grasp_flag=1)
