"""RGB-Stacking rewards from positions and gripper state (spec §B.10-B.11), ROS-free and sim-free.

Code-exact port of rgb_stacking/stack_rewards.py + reward_functions.py (default shaped reward):

  reach_grasp  ConditionalAnd(reach, grasp, 0.9)
                 reach = tolerance(red - pinch, p = 0.02 m, margin 0.15 m)
                 grasp = max(0.5 * tolerance(255 - finger, p ~ 0, margin 255), [grasp flag == 2])
  lift         grasp * lift(red z: 0 at <= 0.1048 m, 1 at >= 0.1498 m, linear between)
                     * inside(red centre inside the workspace ellipsoid, else ~0)
  hover        tolerance(blue + (0, 0, 0.04) - red, p = 0.01 m, margin 0.20 m), 0 if red z < 0.10 m
  stack        1 iff |red_xy - blue_xy| <= 0.03 m, |(z_red - z_blue) - 0.04| <= 0.01 m, flag != 2
  stack_leave  stack * tolerance(red + (0, 0, 0.10) - pinch, p = (1, 1, 0.03) m, margin 0.05 m)
  staged       from stage 5 down to 1: first stage k with value > 0.01 -> (k - 1 + value) / 5,
               else stage-1 value / 5  (each term clipped to [0, 1] first)

Part of the contract because both kinds of cell compute it: chef_sim's env on ground truth, chef_real's
pixel reward node on estimated object positions (no MuJoCo needed for either call). Sparse
success needs contacts (`sparse_success_contacts`, what the sim uses); `sparse_success_pose_only` is
the documented approximation for cells without contact information (docs/sim.md).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np

from chef_contract.spec import (
    BASKET_CENTER_M, GRASP_INWARD, REWARD_STAGE_TERMS, STAGE_THRESHOLD, WORKSPACE_CENTER_M,
    WORKSPACE_SIZE_M,
)

# --- constants of rgb_stacking/stack_rewards.py (m) ----------------------------------------------
LIFT_Z_MIN_M = BASKET_CENTER_M[2] + 0.055           # 0.1048 m absolute
LIFT_Z_MAX_M = BASKET_CENTER_M[2] + 0.1             # 0.1498 m absolute
STACK_HEIGHT_M = 0.04                               # (top size + bottom size) / 2 with 0.04 each
STACK_HORIZONTAL_TOLERANCE_M = 0.03
STACK_VERTICAL_TOLERANCE_M = 0.01
HOVER_OFFSET_M = 0.1                                # pinch target above the red object (stage 5)
HOVER_Z_MIN_M = 0.1                                 # hover reward needs red above this height
REACH_TOLERANCE_M = (0.02, 0.02, 0.02)
REACH_MARGIN_M = 0.15
PLACE_TOLERANCE_M = (0.01, 0.01, 0.01)
PLACE_MARGIN_M = 0.2
ABOVE_TOLERANCE_M = (1.0, 1.0, 0.03)
ABOVE_MARGIN_M = 0.05
FINGER_CLOSED = 255.0
LOSS_AT_MARGIN = 0.95
MIN_POSITION_TOLERANCE = 1e-9
CONDITIONAL_AND_THRESHOLD = 0.9
# Sparse success (SparseStack): x-y closeness and "on top" margin.
SPARSE_XY_CLOSE_M = 0.05
SPARSE_ONTOP_M = 0.02
# Pose-only approximation of "not touching the robot": pinch this far from the red centre.
POSE_ONLY_CLEARANCE_M = 0.05


def tanh_squared(error: np.ndarray, margin: float, loss_at_margin: float = LOSS_AT_MARGIN) -> float:
    """Hafner & Riedmiller sigmoid loss: tanh(w |e|)^2 with w chosen so the loss at `margin` is 0.95."""
    w = math.atanh(math.sqrt(loss_at_margin)) / margin
    return math.tanh(w * float(np.linalg.norm(error))) ** 2


def tolerance_reward(displacement: Sequence[float], position_tolerance: Optional[Sequence[float]],
                     margin: Optional[float]) -> float:
    """1 inside the tolerance ellipsoid (|d / p| <= 1), else 1 - tanh^2 shaping (0.05 at `margin`).

    position_tolerance None (or zero entries) means "practically none" (1e-9), as in the benchmark;
    margin None/0 gives a sparse reward.
    """
    d = np.asarray(displacement, np.float64)
    if position_tolerance is None:
        p = np.full(d.shape, MIN_POSITION_TOLERANCE)
    else:
        p = np.array(position_tolerance, np.float64)
        p[p == 0] = MIN_POSITION_TOLERANCE
    if float(np.linalg.norm(d / p)) <= 1.0:
        return 1.0
    if not margin:
        return 0.0
    return 1.0 - tanh_squared(d, margin)


def lift_shaped(z_m: float, z_min: float = LIFT_Z_MIN_M, z_max: float = LIFT_Z_MAX_M) -> float:
    if z_m <= z_min:
        return 0.0
    if z_m >= z_max:
        return 1.0
    return (z_m - z_min) / (z_max - z_min)


def inside_workspace(pos_m: Sequence[float]) -> float:
    """~1 if the point is inside the workspace ellipsoid (semi-axes = half the box), ~0 outside."""
    d = np.asarray(WORKSPACE_CENTER_M) - np.asarray(pos_m, np.float64)
    return tolerance_reward(d, np.asarray(WORKSPACE_SIZE_M) / 2.0, 1e-12)


def stack_pair(red_pos: Sequence[float], blue_pos: Sequence[float], grasp_flag: float) -> float:
    red, blue = red_pos, blue_pos
    if math.hypot(red[0] - blue[0], red[1] - blue[1]) > STACK_HORIZONTAL_TOLERANCE_M:
        return 0.0
    if abs((red[2] - blue[2]) - STACK_HEIGHT_M) > STACK_VERTICAL_TOLERANCE_M:
        return 0.0
    if int(round(float(grasp_flag))) == GRASP_INWARD:
        return 0.0
    return 1.0


def _tol3(d, p, margin: float) -> float:
    """tolerance_reward for 3-vectors with plain floats (the hot path of every env step)."""
    if math.sqrt((d[0] / p[0]) ** 2 + (d[1] / p[1]) ** 2 + (d[2] / p[2]) ** 2) <= 1.0:
        return 1.0
    w = math.atanh(math.sqrt(LOSS_AT_MARGIN)) / margin
    return 1.0 - math.tanh(w * math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])) ** 2


def reward_terms(red_pos: Sequence[float], blue_pos: Sequence[float], pinch_pos: Sequence[float],
                 finger_angle_255: float, grasp_flag: float) -> Dict[str, float]:
    """The five stage terms plus 'staged', from world positions (m) and the gripper state.

    finger_angle_255: gripper opening on the benchmark scale (0 open .. 255 closed);
    grasp_flag: Robotiq object-detection status 1 / 2 (grasp while closing) / 3.
    """
    rx, ry, rz = (float(v) for v in list(red_pos)[:3])
    bx, by, bz = (float(v) for v in list(blue_pos)[:3])
    px, py, pz = (float(v) for v in list(pinch_pos)[:3])
    inward = int(round(float(grasp_flag))) == GRASP_INWARD
    reach = _tol3((rx - px, ry - py, rz - pz), REACH_TOLERANCE_M, REACH_MARGIN_M)
    close_fingers = tolerance_reward([FINGER_CLOSED - float(finger_angle_255)], None, FINGER_CLOSED)
    grasp = max(0.5 * close_fingers, 1.0 if inward else 0.0)
    reach_grasp = (0.5 + grasp / 2.0) * reach if reach > CONDITIONAL_AND_THRESHOLD else 0.5 * reach
    cx, cy, cz = WORKSPACE_CENTER_M
    inside = _tol3((cx - rx, cy - ry, cz - rz), tuple(s / 2.0 for s in WORKSPACE_SIZE_M), 1e-12)
    lift = grasp * lift_shaped(rz) * inside
    if rz < HOVER_Z_MIN_M:
        hover = 0.0
    else:
        hover = _tol3((bx - rx, by - ry, bz + STACK_HEIGHT_M - rz), PLACE_TOLERANCE_M, PLACE_MARGIN_M)
    stack = stack_pair((rx, ry, rz), (bx, by, bz), grasp_flag)
    above = _tol3((rx - px, ry - py, rz + HOVER_OFFSET_M - pz), ABOVE_TOLERANCE_M, ABOVE_MARGIN_M)
    terms = {'reach_grasp': reach_grasp, 'lift': lift, 'hover': hover, 'stack': stack,
             'stack_leave': stack * above}
    terms = {k: min(1.0, max(0.0, float(v))) for k, v in terms.items()}
    terms['staged'] = staged_reward(terms)
    return terms


def staged_reward(terms: Dict[str, float], threshold: float = STAGE_THRESHOLD) -> float:
    """rgb_stacking Staged: highest stage above `threshold` wins, normalised by the 5 stages."""
    values = [min(1.0, max(0.0, float(terms[k]))) for k in REWARD_STAGE_TERMS]
    n = len(values)
    last = 0.0
    for i, v in enumerate(reversed(values)):
        last = v
        if v > threshold:
            return (n - (i + 1) + v) / n
    return last / n


def sparse_success_contacts(red_pos: Sequence[float], blue_pos: Sequence[float],
                            red_touches_blue: bool, red_touches_ground: bool,
                            red_touches_robot: bool) -> bool:
    """SparseStack of the benchmark: red within 5 cm of blue in x-y, more than 2 cm higher, in
    contact with blue, and touching neither the ground plane nor the robot (contacts from MuJoCo)."""
    red = np.asarray(red_pos, np.float64)
    blue = np.asarray(blue_pos, np.float64)
    return bool(float(np.linalg.norm(red[:2] - blue[:2])) < SPARSE_XY_CLOSE_M
                and (red[2] - blue[2]) > SPARSE_ONTOP_M
                and red_touches_blue and not red_touches_ground and not red_touches_robot)


def sparse_success_pose_only(red_pos: Sequence[float], blue_pos: Sequence[float],
                             pinch_pos: Sequence[float], grasp_flag: float,
                             finger_angle_255: float = 0.0) -> bool:
    """Approximation of `sparse_success_contacts` for cells without contact sensing.

    Geometry as in SparseStack (x-y < 5 cm, red > 2 cm above blue). Contact with blue is assumed
    when red sits above blue; "not touching the robot" becomes: the gripper reports no grasp
    (flag != 2) and the pinch point is at least 5 cm from the red centre. Ground contact is not
    checked (red above blue implies it is off the basket floor unless it leans over the edge).
    """
    red = np.asarray(red_pos, np.float64)[:3]
    blue = np.asarray(blue_pos, np.float64)[:3]
    pinch = np.asarray(pinch_pos, np.float64)[:3]
    del finger_angle_255
    return bool(float(np.linalg.norm(red[:2] - blue[:2])) < SPARSE_XY_CLOSE_M
                and (red[2] - blue[2]) > SPARSE_ONTOP_M
                and int(round(float(grasp_flag))) != GRASP_INWARD
                and float(np.linalg.norm(red - pinch)) >= POSE_ONLY_CLEARANCE_M)


def frame_reward_terms(frame: Dict[str, np.ndarray]) -> Dict[str, float]:
    """`reward_terms` from one un-stacked observation frame (benchmark keys)."""
    return reward_terms(
        np.ravel(frame['rgb30_red/abs_pose'])[:3], np.ravel(frame['rgb30_blue/abs_pose'])[:3],
        np.ravel(frame['sawyer/pinch/pose'])[:3], float(np.ravel(frame['gripper/joints/angle'])[0]),
        float(np.ravel(frame['gripper/grasp'])[0]))
