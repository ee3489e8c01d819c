"""Scripted privileged pick-and-place expert: stacks red on blue from the stacked state observation.

The sim's test oracle and a data source for the policy package. It reads only the benchmark
observation dict (stacked, index 0 = newest) and uses the sim-only object poses, so it runs against
RgbStackingEnv, against recorded frames, or behind the ROS bridge unchanged.

Phases: reach (above red, fingers aligned with a pair of parallel faces) -> descend -> close ->
lift -> carry (red above blue) -> place (lower until red rests on blue) -> release -> retreat
(pinch 10 cm above red, the stage-5 pose). Failed grasps and drops go back to reach.
`noise_std` adds Gaussian noise (in action units) to the arm dims, for diverse demonstrations.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np

from chef_contract.spec import (
    GRASP_INWARD, WORKSPACE_HIGH_M, WORKSPACE_LOW_M, WRIST_YAW_LIMITS_RAD,
)

PHASES = ('reach', 'descend', 'close', 'lift', 'carry', 'place', 'release', 'retreat')
HOVER_ABOVE_M = 0.10          # pinch height above the red centre while reaching
CARRY_CLEARANCE_M = 0.10      # red centre above blue centre while carrying
LIFT_Z_M = 0.22               # pinch height after lifting
POS_GAIN = 30.0               # action units per m of position error (1 unit = 0.07 m/s)
YAW_GAIN = 2.0                # action units per rad of yaw error
WRIST_MARGIN_RAD = 0.15


def _mat_from_quat(q) -> np.ndarray:
    w, x, y, z = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _wrap_half_pi(angle: float) -> float:
    """Wrap to (-pi/2, pi/2]: a parallel gripper is symmetric under a half turn."""
    return (angle + math.pi / 2) % math.pi - math.pi / 2


class ScriptedStacker:
    """`act(obs) -> np.ndarray[5]` in [-1, 1]; `reset()` before each episode."""

    def __init__(self, noise_std: float = 0.0, seed: Optional[int] = None):
        self.noise_std = float(noise_std)
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = 'reach'
        self._ticks = 0            # ticks spent in the current phase
        self._grip_offset = 0.0    # red centre z - pinch z while grasped
        self._attempt = 0          # grasp attempts so far (selects the pair of faces)
        self._finger_prev = 0.0
        self._yaw_goal = None      # (attempt, object axis angle, closing-axis goal angle) rad

    # ---------------------------------------------------------------------------------------------
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        red = np.asarray(obs['rgb30_red/abs_pose'], np.float64)
        blue = np.asarray(obs['rgb30_blue/abs_pose'], np.float64)
        pinch = np.asarray(obs['sawyer/pinch/pose'], np.float64)
        red, blue, pinch = (a[0] if a.ndim == 2 else a for a in (red, blue, pinch))
        red_prev = np.asarray(obs['rgb30_red/abs_pose'], np.float64)
        red_prev = red_prev[1] if red_prev.ndim == 2 else red
        grasp = float(np.ravel(obs['gripper/grasp'])[0])
        finger = float(np.ravel(obs['gripper/joints/angle'])[0])
        wrist = float(np.asarray(obs['sawyer/joints/angle']).reshape(-1, 7)[0][6])
        p, r, b = pinch[:3], red[:3], blue[:3]
        self._ticks += 1
        yaw = 0.0
        gripper = -1.0
        target = p.copy()
        ph = self.phase

        if ph == 'reach':
            target = np.array([r[0], r[1], r[2] + HOVER_ABOVE_M])
            yaw = self._align_yaw(red[3:7], pinch[3:7], wrist)
            if np.linalg.norm((target - p)[:2]) < 0.01 and abs(target[2] - p[2]) < 0.03 and abs(yaw) < 0.1:
                self._go('descend')
        elif ph == 'descend':
            target = np.array([r[0], r[1], max(r[2] - 0.005, WORKSPACE_LOW_M[2] + 0.003)])
            yaw = self._align_yaw(red[3:7], pinch[3:7], wrist)
            if p[2] - target[2] < 0.008 or self._ticks > 60:
                self._go('close')
        elif ph == 'close':
            target = p.copy()
            gripper = 1.0
            settled = abs(finger - self._finger_prev) < 2.0
            if (grasp == GRASP_INWARD and settled and self._ticks > 4) or self._ticks > 25:
                self._grip_offset = r[2] - p[2]
                if grasp == GRASP_INWARD and finger < 245:
                    self._go('lift')
                else:
                    self._retry()
        elif ph == 'lift':
            gripper = 1.0
            target = np.array([p[0], p[1], LIFT_Z_M])
            if r[2] - p[2] < self._grip_offset - 0.03 or finger > 250:     # red slipped out
                self._retry()
            elif p[2] > LIFT_Z_M - 0.02:
                self._go('carry')
        elif ph == 'carry':
            gripper = 1.0
            want_red = np.array([b[0], b[1], max(b[2] + CARRY_CLEARANCE_M, r[2])])
            target = p + (want_red - r)
            target[2] = max(target[2], LIFT_Z_M - 0.03)
            if finger > 250 or r[2] < 0.09:
                self._retry()
            elif np.linalg.norm((b - r)[:2]) < 0.006:
                self._go('place')
        elif ph == 'place':
            gripper = 1.0
            xy = p[:2] + (b[:2] - r[:2])
            target = np.array([xy[0], xy[1], p[2] - 0.02])
            descending = red_prev[2] - r[2]
            if finger > 250:
                self._retry()
            elif self._ticks > 4 and descending < 0.0005 and r[2] - b[2] < CARRY_CLEARANCE_M - 0.01:
                self._go('release')
            elif self._ticks > 120:
                self._go('release')
        elif ph == 'release':
            target = p.copy()
            gripper = -1.0
            if finger < 60 or self._ticks > 15:
                self._go('retreat')
        elif ph == 'retreat':
            gripper = -1.0
            target = np.array([r[0], r[1], r[2] + HOVER_ABOVE_M])
            if abs(r[2] - b[2]) > 0.15 or r[2] < b[2]:     # red fell off: try again
                self._go('reach')

        self._finger_prev = finger
        target = np.clip(target, np.asarray(WORKSPACE_LOW_M) + 0.002, np.asarray(WORKSPACE_HIGH_M) - 0.002)
        lin = POS_GAIN * (target - p)
        n = float(np.linalg.norm(lin))
        if n > 1.0:
            lin = lin / n
        action = np.concatenate([lin, [np.clip(YAW_GAIN * yaw, -1.0, 1.0)], [gripper]])
        if self.noise_std > 0:
            action[:4] += self._rng.normal(0.0, self.noise_std, size=4)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ---------------------------------------------------------------------------------------------
    def _go(self, phase: str) -> None:
        self.phase = phase
        self._ticks = 0

    def _retry(self) -> None:
        self._attempt += 1
        self._go('reach')

    def _align_yaw(self, obj_quat, pinch_quat, wrist_rad: float) -> float:
        """Yaw error (rad, + = counter-clockwise seen from above) that turns the finger closing
        axis (pinch y) onto a horizontal object axis. Candidates in order of preference: the
        extrusion axis z (its end faces are always parallel), then x, then y; grasp attempt k uses
        candidate k (mod their number), so a failed grasp retries across another pair of faces.
        The goal angle is chosen once per attempt (re-chosen only if the object turns), so the
        half-turn ambiguity of a parallel gripper cannot make the command flip sign."""
        r_obj = _mat_from_quat(obj_quat)
        close_axis = _mat_from_quat(pinch_quat)[:, 1]
        current = math.atan2(close_axis[1], close_axis[0])
        candidates = [k for k in (2, 0, 1) if math.hypot(r_obj[0, k], r_obj[1, k]) >= 0.7]
        if not candidates:
            return 0.0
        axis = r_obj[:, candidates[self._attempt % len(candidates)]]
        axis_angle = math.atan2(axis[1], axis[0])
        key = (self._attempt, axis_angle)
        if (self._yaw_goal is None or self._yaw_goal[0] != self._attempt
                or abs(_wrap_half_pi(axis_angle - self._yaw_goal[1])) > 0.2):
            err = _wrap_half_pi(axis_angle - current)
            # Positive yaw lowers right_j6 (spec §B.2); keep the wrist inside its limit.
            state_after = -wrist_rad + err
            limit = WRIST_YAW_LIMITS_RAD[1] - WRIST_MARGIN_RAD
            if state_after > limit:
                err -= math.pi
            elif state_after < -limit:
                err += math.pi
            self._yaw_goal = (key[0], axis_angle, current + err)
        return (self._yaw_goal[2] - current + math.pi) % (2 * math.pi) - math.pi


