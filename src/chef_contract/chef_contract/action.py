"""The 5-D agent action and its mapping onto the command topics (spec §B.5).

Agent space: float32[5] in [-1, 1] = [vx, vy, vz, yaw_rate, gripper].
Command space (what crosses ROS):
  * TwistStamped in `base_link`: linear = a[0:3] * 0.07 m/s, angular.z = a[3] * 1.0 rad/s;
  * Float64MultiArray([finger target rad]): a[4] > 0 -> closed (0.8 rad), else open (0.0 rad).
`from_command` is the exact inverse on the arm dims and maps the gripper back to +-1, so a recorded
command becomes an agent action again (the reader uses it).
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

from chef_contract.spec import (
    ACTION_DIM, GRIPPER_CLOSED_POSITION_RAD, GRIPPER_OPEN_POSITION_RAD, MAX_LINEAR_SPEED_MPS,
    MAX_YAW_RATE_RPS,
)

ACTION_LOW = -np.ones(ACTION_DIM, np.float32)
ACTION_HIGH = np.ones(ACTION_DIM, np.float32)
GRIPPER_THRESHOLD_RAD = 0.5 * (GRIPPER_OPEN_POSITION_RAD + GRIPPER_CLOSED_POSITION_RAD)


class InvalidAction(ValueError):
    """An action or command that must never reach an actuator (NaN, inf, wrong shape)."""


def check_finite(values: Sequence[float], what: str = 'action') -> np.ndarray:
    """Return `values` as float64; raise InvalidAction on NaN/inf."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InvalidAction(f'{what} contains NaN or inf: {arr.tolist()}')
    return arr


def gripper_closed(target_rad: float) -> bool:
    return target_rad > GRIPPER_THRESHOLD_RAD


def to_command(action: Sequence[float]) -> Tuple[Tuple[float, float, float], float, float]:
    """Agent action in [-1, 1]^5 -> ((vx, vy, vz) m/s, yaw rad/s, gripper target rad).

    Out-of-range values are clipped to [-1, 1] (the benchmark's action spec bounds); NaN/inf raise.
    """
    a = check_finite(action)
    if a.shape != (ACTION_DIM,):
        raise InvalidAction(f'action must have shape ({ACTION_DIM},), got {a.shape}')
    a = np.clip(a, -1.0, 1.0)
    linear = tuple(float(v) * MAX_LINEAR_SPEED_MPS for v in a[:3])
    yaw = float(a[3]) * MAX_YAW_RATE_RPS
    gripper = GRIPPER_CLOSED_POSITION_RAD if a[4] > 0 else GRIPPER_OPEN_POSITION_RAD
    return linear, yaw, gripper


def from_command(linear_mps: Sequence[float], yaw_rps: float, gripper_rad: float) -> np.ndarray:
    """Commands as they crossed ROS -> agent action in [-1, 1]^5 (float32)."""
    out = np.empty(ACTION_DIM, np.float32)
    out[:3] = np.clip(np.asarray(linear_mps, np.float64) / MAX_LINEAR_SPEED_MPS, -1, 1)
    out[3] = np.clip(yaw_rps / MAX_YAW_RATE_RPS, -1, 1)
    out[4] = 1.0 if gripper_closed(gripper_rad) else -1.0
    return out


def scale_linear_by_norm(linear_mps: Sequence[float], max_speed: float = MAX_LINEAR_SPEED_MPS):
    """Spec X1: scale the linear velocity vector so its norm is at most `max_speed` (no per-axis clip)."""
    v = np.asarray(linear_mps, np.float64)
    n = float(np.linalg.norm(v))
    if n > max_speed and n > 0:
        v = v * (max_speed / n)
    return v


def gripper_ctrl(target_rad: float) -> float:
    """Gripper target (rad) -> bang-bang sim actuator command in [-255, 255] (spec §B.5)."""
    return 255.0 if gripper_closed(target_rad) else -255.0


assert math.isclose(GRIPPER_THRESHOLD_RAD, 0.4)
