"""The benchmark's 4-D Cartesian velocity control of the Sawyer, re-implemented in numpy (spec §B.5-B.6).

Chain (the same order as rgb_stacking/task.py builds its effectors):
  1. `workspace_zeroing` (moma `limit_to_workspace` / ConstrainedActionEffector): a component of the
     4-D command [vx, vy, vz, yaw] is set to ZERO (not clipped) when the gripper TCP (pinch site) is
     already beyond that face of the workspace box and the command pushes further out; likewise yaw
     when the wrist joint right_j6 is beyond +-pi/2 (sign-reversed: positive yaw lowers right_j6).
  2. `CartesianVelocityController.twist` (moma Cartesian4dVelocityEffector): the linear command is a
     world-frame velocity of the wrist site; the yaw command becomes the wrist site's own z-rate
     (negated, the site's z points down); roll/pitch rates come from a P-controller (gain 0.8) that
     turns the site's z axis towards world -z (gripper pointing down).
  3. Norm scaling (Cartesian6dVelocityEffector, spec X1): the linear vector is scaled to at most
     0.07 m/s and the angular vector to at most 1 rad/s - scaled, never clipped per axis.
  4. `CartesianVelocityController.joint_velocities`: damped least squares over the 7 arm joints
     (regularisation 1e-2) with box bounds from the joint velocity limits and from the joint
     position limits (margin 0.01 rad, 0.95 of the distance per control period), solved by a small
     active-set loop; then a null-space bias 0.025 * (q_ref - q) / 0.05 s projected into the null
     space of the free joints' Jacobian. (The benchmark uses DeepMind's LSQP mapper for the same
     two-level problem; this is the DLS + null-space variant the issue allows.)
The resulting joint velocities go to the integrated-velocity actuators and are what the benchmark
reports as `action/environment`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import mujoco
import numpy as np

from chef_contract.spec import (
    ARM_JOINT_VELOCITY_LIMITS_RPS, ARM_Q_REFERENCE_RAD, CONTROL_PERIOD_S, MAX_LINEAR_SPEED_MPS,
    MAX_YAW_RATE_RPS, WORKSPACE_HIGH_M, WORKSPACE_LOW_M, WRIST_YAW_LIMITS_RAD,
)


@dataclass(frozen=True)
class ControllerParams:
    """Values of rgb_stacking/task.py `_sawyer_robot` (spec §B.6)."""

    control_period_s: float = CONTROL_PERIOD_S
    max_linear_speed_mps: float = MAX_LINEAR_SPEED_MPS
    max_angular_speed_rps: float = MAX_YAW_RATE_RPS
    rotation_gain: float = 0.8                     # 1/s, keeps the gripper pointing down
    regularization: float = 1e-2
    nullspace_gain: float = 0.025
    q_reference_rad: Tuple[float, ...] = ARM_Q_REFERENCE_RAD
    joint_velocity_limits_rps: Tuple[float, ...] = ARM_JOINT_VELOCITY_LIMITS_RPS
    joint_limit_margin_rad: float = 0.01
    joint_limit_velocity_scale: float = 0.95


def workspace_zeroing(command4: np.ndarray, pinch_pos_m: np.ndarray, wrist_joint_rad: float,
                      enforce_box: bool = True, enforce_wrist: bool = True,
                      low=WORKSPACE_LOW_M, high=WORKSPACE_HIGH_M,
                      wrist_limits=WRIST_YAW_LIMITS_RAD) -> Tuple[np.ndarray, np.ndarray]:
    """Zero the components of [vx, vy, vz, yaw] that push further outside the limits.

    Returns (constrained command, bool mask of zeroed components). The state compared with the
    limits is (pinch x, y, z, -right_j6) (moma's reverse_wrist_range=True).
    """
    cmd = np.array(command4, np.float64)
    state = np.array([pinch_pos_m[0], pinch_pos_m[1], pinch_pos_m[2], -wrist_joint_rad])
    lo = np.array([low[0], low[1], low[2], -wrist_limits[1]])
    hi = np.array([high[0], high[1], high[2], -wrist_limits[0]])
    mask = ((state < lo) & (cmd < 0.0)) | ((state > hi) & (cmd > 0.0))
    if not enforce_box:
        mask[:3] = False
    if not enforce_wrist:
        mask[3] = False
    cmd[mask] = 0.0
    return cmd, mask


def scale_by_norm(vec: np.ndarray, max_norm: float) -> np.ndarray:
    n = float(np.linalg.norm(vec))
    return vec * (max_norm / n) if n > max_norm else vec


class CartesianVelocityController:
    """Maps a 4-D Cartesian command at the wrist site to 7 Sawyer joint velocities."""

    def __init__(self, model: mujoco.MjModel, wrist_site: int, arm_dof: np.ndarray,
                 arm_qpos: np.ndarray, joint_range_rad: np.ndarray,
                 params: ControllerParams = ControllerParams()):
        self.model = model
        self.site = wrist_site
        self.dof = np.asarray(arm_dof)
        self.qpos_adr = np.asarray(arm_qpos)
        self.p = params
        self.q_min = joint_range_rad[:, 0] + params.joint_limit_margin_rad
        self.q_max = joint_range_rad[:, 1] - params.joint_limit_margin_rad
        self.v_max = np.asarray(params.joint_velocity_limits_rps, np.float64)
        self.q_ref = np.asarray(params.q_reference_rad, np.float64)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._jac = np.zeros((6, len(self.dof)))

    # --- step 2 + 3 ------------------------------------------------------------------------------
    def twist(self, data: mujoco.MjData, linear_mps: np.ndarray, yaw_rps: float) -> np.ndarray:
        """World-frame 6-D twist [v (m/s), w (rad/s)] of the wrist site, norm-scaled (spec X1)."""
        rot = data.site_xmat[self.site].reshape(3, 3)
        # Target z axis (world -z) in the site frame is -(third row of R); turning the site z axis
        # (0, 0, 1) onto it: axis = z x z_to = (-z_to[1], z_to[0], 0), angle = atan2(|axis|, z_to[2]).
        zx, zy, zz = -rot[2, 0], -rot[2, 1], -rot[2, 2]
        s = math.hypot(zx, zy)
        w_site = np.zeros(3)
        if s > 1e-12:
            k = self.p.rotation_gain * math.atan2(s, zz) / s
            w_site[0], w_site[1] = -zy * k, zx * k
        w_site[2] = -yaw_rps
        lin = scale_by_norm(np.asarray(linear_mps, np.float64), self.p.max_linear_speed_mps)
        ang = scale_by_norm(rot @ w_site, self.p.max_angular_speed_rps)
        return np.concatenate([lin, ang])

    # --- step 4 ----------------------------------------------------------------------------------
    def joint_velocities(self, data: mujoco.MjData, twist: np.ndarray) -> np.ndarray:
        """Joint velocities (rad/s, 7) that realise `twist` at the wrist site, within limits."""
        mujoco.mj_jacSite(self.model, data, self._jacp, self._jacr, self.site)
        jac = self._jac
        jac[:3] = self._jacp[:, self.dof]
        jac[3:] = self._jacr[:, self.dof]
        q = data.qpos[self.qpos_adr]
        dt = self.p.control_period_s
        scale = self.p.joint_limit_velocity_scale
        lb = np.maximum(-self.v_max, np.minimum(0.0, scale * (self.q_min - q) / dt))
        ub = np.minimum(self.v_max, np.maximum(0.0, scale * (self.q_max - q) / dt))
        qd, free = _bounded_dls(jac, twist, self.p.regularization, lb, ub)
        if self.p.nullspace_gain > 0 and free.any():
            qd_null = self.p.nullspace_gain * (self.q_ref - q) / dt
            jf = jac[:, free]
            n_free = jf.shape[1]
            if n_free > jf.shape[0]:       # a null space exists: project the bias into it
                # I - J+ J with J+ = J^T (J J^T)^-1 (J has full row rank away from singularities)
                try:
                    proj = np.eye(n_free) - jf.T @ np.linalg.solve(jf @ jf.T, jf)
                except np.linalg.LinAlgError:
                    proj = np.eye(n_free) - np.linalg.pinv(jf, rcond=1e-6) @ jf
                qd[free] += proj @ qd_null[free]
                qd = np.clip(qd, lb, ub)
        return qd

    def command(self, data: mujoco.MjData, linear_mps: np.ndarray, yaw_rps: float) -> np.ndarray:
        return self.joint_velocities(data, self.twist(data, linear_mps, yaw_rps))


def _bounded_dls(jac: np.ndarray, target: np.ndarray, reg: float, lb: np.ndarray, ub: np.ndarray):
    """min ||J x - t||^2 + reg ||x||^2 s.t. lb <= x <= ub, by fixing violators at their bound."""
    n = jac.shape[1]
    x = np.zeros(n)
    free = np.ones(n, bool)
    for _ in range(n):
        jf = jac[:, free]
        rhs = target - jac[:, ~free] @ x[~free]
        x[free] = np.linalg.solve(jf.T @ jf + reg * np.eye(jf.shape[1]), jf.T @ rhs)
        violated = free & ((x < lb - 1e-12) | (x > ub + 1e-12))
        if not violated.any():
            break
        x[violated] = np.clip(x[violated], lb[violated], ub[violated])
        free &= ~violated
        if not free.any():
            break
    return np.clip(x, lb, ub), free


def pose_ik(model: mujoco.MjModel, data: mujoco.MjData, site: int, qpos_adr: np.ndarray,
            dof: np.ndarray, joint_range_rad: np.ndarray, target_pos: np.ndarray,
            target_rot: np.ndarray, q_start: np.ndarray, iterations: int = 200,
            tol: float = 1e-6) -> Tuple[np.ndarray, float]:
    """Damped-least-squares IK of `site` to (pos, rotation matrix); returns (q, final error).

    Replaces moma's IkSolver (its QP mapper is not available here). Works on `data` in place.
    """
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))
    q = np.array(q_start, np.float64)
    quat = np.zeros(4)
    err_rot = np.zeros(3)
    err = np.inf
    for _ in range(iterations):
        data.qpos[qpos_adr] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        e_pos = target_pos - data.site_xpos[site]
        r_err = target_rot @ data.site_xmat[site].reshape(3, 3).T
        mujoco.mju_mat2Quat(quat, r_err.ravel())
        mujoco.mju_quat2Vel(err_rot, quat, 1.0)
        e = np.concatenate([e_pos, err_rot])
        err = float(np.linalg.norm(e))
        if err < tol:
            break
        mujoco.mj_jacSite(model, data, jacp, jacr, site)
        jac = np.vstack([jacp[:, dof], jacr[:, dof]])
        dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), e)
        q = np.clip(q + dq, joint_range_rad[:, 0], joint_range_rad[:, 1])
    return q, err
