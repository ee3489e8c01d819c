"""MuJoCo stand-in for a real cell's drivers (ROS-free core of `hardware_emulator` and `servo_emulator`).

The real graph (config/graphs/real.yaml) talks to ros2_control, MoveIt Servo, the Basler drivers and
the FTS-300; with `hardware:=mujoco` these classes take their place on the drivers' own interfaces,
so everything above them (adapters, pixel reward, policy, safety filter, recorder, episode manager)
runs unchanged. Physics is chef_sim's RgbStackingEnv (the same scene, actuators and contacts as the
sim cell), driven at the actuator level:

* `EmulatedCell`: the cell's hardware behind ros2_control. A position group controller
  (`arm_position_controller`: 7 joint positions, rad) moves the integrated-velocity actuators to the
  commanded positions within one control period (joint velocity limits respected) and holds the last
  command; the gripper forward controller's finger target (rad) closes the 2F-85 above mid-range; the
  F/T sensor and joint states are read from the physics; cameras are rendered as the driver's frame
  (calibration size / binning, the calibration's vertical field of view); `reset_objects(seed)` is
  the cell's reset routine (the benchmark's initial-state distribution for robot and objects).
* `ServoStage`: MoveIt Servo's twist mode for position controllers: a TwistStamped of the wrist in
  base_link -> joint velocities (chef_sim's bounded damped least squares over the Sawyer Jacobian)
  -> integrated joint positions every `publish_period_s`, from its own last command (as Servo does);
  halts when no command arrived for `incoming_command_timeout_s`; status codes of moveit_servo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import mujoco
import numpy as np

from chef_contract.spec import (
    ARM_COMMAND_TIMEOUT_S, ARM_JOINT_VELOCITY_LIMITS_RPS, CAMERA_NAMES, CONTROL_PERIOD_S,
    GRIPPER_CLOSED_POSITION_RAD, GRIPPER_CTRL_RANGE, GRIPPER_OPEN_POSITION_RAD,
)


# --- MoveIt Servo's status codes (moveit_servo/utils/datatypes.hpp, StatusCode, Jazzy/Kilted) -------
class ServoStatus:
    INVALID = -1
    NO_WARNING = 0
    DECELERATE_FOR_APPROACHING_SINGULARITY = 1
    HALT_FOR_SINGULARITY = 2
    DECELERATE_FOR_LEAVING_SINGULARITY = 3
    DECELERATE_FOR_COLLISION = 4
    HALT_FOR_COLLISION = 5
    JOINT_BOUND = 6


RESYNC_TOLERANCE_RAD = 0.1       # Servo's own command further than this from the measured joints = re-seed


@dataclass(frozen=True)
class DriverCamera:
    """One camera as its driver sees it: calibration size, intrinsics (full resolution), binning."""

    name: str
    size_px: Tuple[int, int]            # (width, height) of the calibration (full sensor)
    k: np.ndarray                       # 3x3 intrinsics at full resolution
    binning: int = 1                    # the image is (width / binning, height / binning)

    @property
    def image_size_px(self) -> Tuple[int, int]:
        return self.size_px[0] // self.binning, self.size_px[1] // self.binning

    @property
    def fovy_deg(self) -> float:
        """Vertical field of view of the full frame (pinhole, principal point at the centre)."""
        return math.degrees(2.0 * math.atan(0.5 * self.size_px[1] / self.k[1, 1]))

    def check_renderable(self) -> Optional[str]:
        """Why a MuJoCo camera (square pixels, centred principal point) cannot render this frame."""
        w, h = self.size_px
        fx, fy, cx, cy = self.k[0, 0], self.k[1, 1], self.k[0, 2], self.k[1, 2]
        if w % self.binning or h % self.binning:
            return f'{self.name}: {w}x{h} is not divisible by binning {self.binning}'
        if abs(fx - fy) > 1e-3 * fy:
            return f'{self.name}: fx {fx:.1f} != fy {fy:.1f} px (MuJoCo renders square pixels)'
        if abs(cx - (w - 1) / 2) > 0.5 or abs(cy - (h - 1) / 2) > 0.5:
            return f'{self.name}: principal point ({cx:.1f}, {cy:.1f}) is not the image centre'
        return None


def read_driver_calibration(path, name: str, binning: int = 1) -> DriverCamera:
    """A camera_info_manager YAML (what the driver serves through camera_info_url) -> DriverCamera."""
    import yaml
    with open(path, encoding='utf-8') as fh:
        data = yaml.safe_load(fh)
    k = np.asarray(data['camera_matrix']['data'], np.float64).reshape(3, 3)
    cam = DriverCamera(name, (int(data['image_width']), int(data['image_height'])), k, int(binning))
    d = np.asarray((data.get('distortion_coefficients') or {}).get('data', []), np.float64)
    if d.size and np.any(np.abs(d) > 0):
        raise ValueError(f'{path}: the emulator renders distortion-free pinhole images; this calibration '
                         f'has distortion {d.tolist()}')
    why = cam.check_renderable()
    if why:
        raise ValueError(f'{path}: {why}')
    return cam


class EmulatedCell:
    """The cell's hardware at ros2_control's level, on chef_sim's MuJoCo env (one control period a tick)."""

    def __init__(self, env, cameras: Sequence[DriverCamera] = ()):
        self.env = env
        self.cameras = {c.name: c for c in cameras}
        unknown = [c for c in self.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f'unknown cameras {unknown}; expected a subset of {CAMERA_NAMES}')
        self.v_max = np.asarray(ARM_JOINT_VELOCITY_LIMITS_RPS, np.float64)
        self.frame: Dict[str, np.ndarray] = {}
        self.terms: Dict[str, float] = {}
        self.arm_target: Optional[np.ndarray] = None     # the position controller's held command (rad)
        self.finger_target_rad = GRIPPER_OPEN_POSITION_RAD
        self.resets = 0

    def reset_objects(self, seed: int) -> None:
        """The cell's reset routine: robot and objects drawn from the benchmark's initial-state
        distribution (chef_sim's reset), gripper open; the controllers hold the new pose."""
        _, info = self.env.reset(seed=int(seed))
        self.frame = self.env.raw_frame()
        self.terms = dict(info['reward_terms'])
        self.arm_target = None
        self.finger_target_rad = GRIPPER_OPEN_POSITION_RAD
        self.resets += 1

    def command_arm_positions(self, q_rad: Sequence[float]) -> None:
        q = np.asarray(q_rad, np.float64)
        if q.shape != (7,) or not np.all(np.isfinite(q)):
            raise ValueError(f'arm position command needs 7 finite values, got {list(q_rad)}')
        self.arm_target = q

    def command_finger(self, target_rad: float) -> None:
        if not math.isfinite(target_rad):
            raise ValueError(f'finger target is not finite: {target_rad}')
        self.finger_target_rad = float(target_rad)

    def step(self) -> None:
        """One control period: the position controller drives the actuators toward their targets."""
        held = self.env.arm_position_targets()
        target = held if self.arm_target is None else self.arm_target
        qd = np.clip((target - held) / CONTROL_PERIOD_S, -self.v_max, self.v_max)
        mid = 0.5 * (GRIPPER_OPEN_POSITION_RAD + GRIPPER_CLOSED_POSITION_RAD)
        grip = GRIPPER_CTRL_RANGE[1] if self.finger_target_rad > mid else GRIPPER_CTRL_RANGE[0]
        self.frame, self.terms = self.env.step_joints(qd, grip)

    def render(self, camera: str) -> np.ndarray:
        cam = self.cameras[camera]
        w, h = cam.image_size_px
        return self.env.render_view(camera, w, h, cam.fovy_deg)

    @property
    def success(self) -> bool:
        """Ground truth: the benchmark's contact-based sparse success at this tick."""
        return bool(self.terms.get('sparse_success', 0.0) > 0.5)


class ServoStage:
    """MoveIt Servo's twist -> joint position path for a position group controller.

    `command(twist, now_s)` takes the wrist twist [vx vy vz wx wy wz] (m/s, rad/s, base_link);
    `update(q_measured, now_s)` is called every publish period and returns the 7 joint positions to
    publish, or None while halted (no command for incoming_command_timeout_s, or paused).
    """

    def __init__(self, publish_period_s: float = 0.01,
                 incoming_command_timeout_s: float = ARM_COMMAND_TIMEOUT_S):
        from chef_sim import scene as S
        from chef_sim.controller import CartesianVelocityController
        scene = S.compiled_scene(S.SceneOptions())
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        ix = scene.index
        self.qpos_adr = ix.arm_qpos
        self.controller = CartesianVelocityController(self.model, ix.wrist_site, ix.arm_dof, ix.arm_qpos,
                                                      ix.arm_joint_range)
        self.period_s = float(publish_period_s)
        self.timeout_s = float(incoming_command_timeout_s)
        self.twist = np.zeros(6)
        self.last_command_s: Optional[float] = None
        self.q_cmd: Optional[np.ndarray] = None
        self.paused = False
        self.halted = True
        self.status = ServoStatus.NO_WARNING

    def command(self, twist: Sequence[float], now_s: float, frame_id: str = 'base_link') -> int:
        tw = np.asarray(twist, np.float64)
        if tw.shape != (6,) or not np.all(np.isfinite(tw)) or frame_id not in ('', 'base_link'):
            self.status = ServoStatus.INVALID
            return self.status
        self.twist = tw
        self.last_command_s = now_s
        return self.status

    def update(self, q_measured: Sequence[float], now_s: float) -> Optional[np.ndarray]:
        q_meas = np.asarray(q_measured, np.float64)
        stale = self.last_command_s is None or now_s - self.last_command_s > self.timeout_s
        if self.paused or stale:
            if not self.halted and self.q_cmd is not None:
                self.halted = True
                return self.q_cmd.copy()          # one last hold command at the halted pose
            self.halted = True
            return None
        if self.halted or self.q_cmd is None or np.max(np.abs(self.q_cmd - q_meas)) > RESYNC_TOLERANCE_RAD:
            self.q_cmd = q_meas.copy()            # (re)start from the robot's state, as Servo does
        self.halted = False
        self.data.qpos[self.qpos_adr] = self.q_cmd
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        if not np.any(self.twist):
            qd = np.zeros(len(self.qpos_adr))     # Servo's zero twist: hold (no null-space drift)
        else:
            qd = self.controller.joint_velocities(self.data, self.twist)
        bounded = np.any(np.abs(qd) >= self.controller.v_max - 1e-9) or \
            np.any((self.q_cmd <= self.controller.q_min) | (self.q_cmd >= self.controller.q_max))
        self.status = ServoStatus.JOINT_BOUND if bounded and np.any(self.twist) else ServoStatus.NO_WARNING
        self.q_cmd = self.q_cmd + qd * self.period_s
        return self.q_cmd.copy()
