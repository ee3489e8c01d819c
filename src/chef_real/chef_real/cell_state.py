"""What the real cell must publish besides its drivers (ROS-free core of the state_adapter node).

The sim bridge publishes every per-tick contract topic itself. On the real cell the drivers give
`joint_states` (joint_state_broadcaster), images (camera drivers) and `wrist/wrench` (F/T
broadcaster); this module computes the rest from them:

  * tcp/pinch_pose, tcp/wrist_pose  - forward kinematics of the cell's URDF (frames `tcp`, `right_hand`)
  * tcp/wrist_twist                 - J_wrist(q) qdot, base_link axes (m/s, rad/s)
  * gripper/grasp_status            - the benchmark's 1/2/3 grasp flag (spec §B.6), from finger motion
  * joint_command/applied           - what went to the actuators: arm joint velocities implied by Servo's
                                      position targets, and the gripper command as -255 | +255
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from chef_contract import topics as T
from chef_contract.spec import (
    ARM_JOINT_NAMES, GRASP_INWARD, GRASP_NONE, GRASP_OUTWARD, GRIPPER_CLOSED_POSITION_RAD,
    GRIPPER_CTRL_RANGE, GRIPPER_JOINT_NAME, GRIPPER_OPEN_POSITION_RAD,
)
from chef_real.kinematics import RobotModel
from chef_real.transforms import matrix_to_pose7

GRIPPER_MID_RAD = 0.5 * (GRIPPER_OPEN_POSITION_RAD + GRIPPER_CLOSED_POSITION_RAD)


@dataclass
class GraspDetectorConfig:
    stall_velocity_rps: float = 0.05      # |finger velocity| below this counts as stopped
    open_margin_rad: float = 0.05         # finger must be this far from fully open ...
    closed_margin_rad: float = 0.03       # ... and from fully closed to be blocked by an object
    stall_samples: int = 3                # consecutive stopped samples before the flag rises


class GraspDetector:
    """The Robotiq object-detection status from finger motion: the finger stopped part-way while
    closing means an object between the fingers (GRASP_INWARD = 2), while opening GRASP_OUTWARD = 3,
    otherwise GRASP_NONE = 1. Matches how the sim emulates the flag (spec §B.6). Where the gripper
    driver exports Robotiq's gOBJ status, `from_robotiq_object_status` maps it instead.
    """

    def __init__(self, config: Optional[GraspDetectorConfig] = None):
        self.c = config or GraspDetectorConfig()
        self._stalled = 0

    def update(self, position_rad: float, velocity_rps: float, target_rad: Optional[float]) -> int:
        c = self.c
        if not (np.isfinite(position_rad) and np.isfinite(velocity_rps)) or target_rad is None:
            self._stalled = 0
            return GRASP_NONE
        blocked = (GRIPPER_OPEN_POSITION_RAD + c.open_margin_rad < position_rad
                   < GRIPPER_CLOSED_POSITION_RAD - c.closed_margin_rad)
        stopped = abs(velocity_rps) < c.stall_velocity_rps
        self._stalled = self._stalled + 1 if (blocked and stopped) else 0
        if self._stalled < c.stall_samples:
            return GRASP_NONE
        return GRASP_INWARD if target_rad > GRIPPER_MID_RAD else GRASP_OUTWARD

    @staticmethod
    def from_robotiq_object_status(g_obj: int) -> int:
        """Robotiq gOBJ: 0 moving, 1 stopped on an object while opening, 2 while closing, 3 at goal."""
        return {1: GRASP_OUTWARD, 2: GRASP_INWARD}.get(int(g_obj), GRASP_NONE)


def is_new_tick(stamp_ns: int, last_tick_ns: Optional[int], rate_hz: float) -> bool:
    """Whether a joint state stamped `stamp_ns` starts a new control tick after the tick stamped
    `last_tick_ns` (None: none yet): at least 0.9 tick periods later by the driver's own stamps (a
    driver faster than the tick rate is decimated; 10 % stamp jitter never merges two ticks), or
    earlier than it (the driver's clock restarted). The state adapter publishes one observation set
    per such tick and the episode manager counts the episode's steps on them, so both follow the
    robot's ticks, not a timer of their own."""
    return last_tick_ns is None or stamp_ns < last_tick_ns or stamp_ns - last_tick_ns >= 0.9e9 / rate_hz


def gripper_command_bench(target_rad: Optional[float]) -> float:
    """Gripper target (rad) -> the benchmark's bang-bang actuator command -255 (open) | +255 (close)."""
    if target_rad is None:
        return GRIPPER_CTRL_RANGE[0]
    return GRIPPER_CTRL_RANGE[1] if target_rad > GRIPPER_MID_RAD else GRIPPER_CTRL_RANGE[0]


class CellStateEstimator:
    """Joint states + commands in, contract-frame quantities out (no ROS)."""

    def __init__(self, urdf_text: str, grasp: Optional[GraspDetectorConfig] = None):
        self.model = RobotModel(urdf_text)
        missing = [n for n in ARM_JOINT_NAMES + (GRIPPER_JOINT_NAME,) if n not in self.model.joints]
        if missing:
            raise ValueError(f'robot description lacks the contract joints {missing}')
        for link in (T.PINCH_FRAME, T.WRIST_FRAME):
            self.model.chain(link)               # raises if the frame is missing
        self.grasp = GraspDetector(grasp)
        self.q: Dict[str, float] = {}
        self.qd: Dict[str, float] = {}
        self.gripper_target_rad: Optional[float] = None
        self._last_arm_cmd: Optional[np.ndarray] = None
        self._last_arm_cmd_s: Optional[float] = None
        self.arm_velocity_cmd = np.zeros(len(ARM_JOINT_NAMES))
        self.grasp_status = GRASP_NONE

    # --- inputs ---------------------------------------------------------------------------------
    def update_joints(self, names: Sequence[str], position: Sequence[float], velocity: Sequence[float]):
        """One joint_states message; returns the grasp flag after it."""
        for i, n in enumerate(names):
            if i < len(position):
                self.q[n] = float(position[i])
            if i < len(velocity):
                self.qd[n] = float(velocity[i])
        if GRIPPER_JOINT_NAME in self.q:
            self.grasp_status = self.grasp.update(self.q[GRIPPER_JOINT_NAME],
                                                  self.qd.get(GRIPPER_JOINT_NAME, 0.0),
                                                  self.gripper_target_rad)
        return self.grasp_status

    def update_arm_position_command(self, positions: Sequence[float], t_s: float) -> np.ndarray:
        """Servo's joint position targets at time t_s -> implied joint velocity command (rad/s)."""
        cmd = np.asarray(positions, np.float64)
        if cmd.shape != (len(ARM_JOINT_NAMES),) or not np.all(np.isfinite(cmd)):
            raise ValueError(f'arm position command must be {len(ARM_JOINT_NAMES)} finite values')
        if self._last_arm_cmd is not None and t_s > self._last_arm_cmd_s:
            self.arm_velocity_cmd = (cmd - self._last_arm_cmd) / (t_s - self._last_arm_cmd_s)
        self._last_arm_cmd, self._last_arm_cmd_s = cmd, t_s
        return self.arm_velocity_cmd

    def command_went_stale(self):
        """No arm command for a while (Servo halted or paused): the applied velocity is zero."""
        self.arm_velocity_cmd = np.zeros(len(ARM_JOINT_NAMES))
        self._last_arm_cmd = None

    def update_gripper_command(self, target_rad: float):
        if np.isfinite(target_rad):
            self.gripper_target_rad = float(target_rad)

    # --- outputs --------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return all(n in self.q for n in ARM_JOINT_NAMES)

    def pinch_pose7(self) -> np.ndarray:
        return matrix_to_pose7(self.model.link_pose(T.PINCH_FRAME, self.q))

    def wrist_pose7(self) -> np.ndarray:
        return matrix_to_pose7(self.model.link_pose(T.WRIST_FRAME, self.q))

    def wrist_twist(self) -> np.ndarray:
        """(vx, vy, vz, wx, wy, wz) of the wrist site in base_link axes (m/s, rad/s)."""
        jac = self.model.jacobian(T.WRIST_FRAME, self.q, ARM_JOINT_NAMES)
        qd = np.array([self.qd.get(n, 0.0) for n in ARM_JOINT_NAMES])
        return jac @ qd

    def applied_command(self) -> np.ndarray:
        """The benchmark's `action/environment` 8-vector: 7 joint velocities + gripper -255 | 255."""
        return np.concatenate([self.arm_velocity_cmd, [gripper_command_bench(self.gripper_target_rad)]])

    def joint_positions(self, names: Sequence[str]) -> Mapping[str, float]:
        return {n: self.q[n] for n in names if n in self.q}
