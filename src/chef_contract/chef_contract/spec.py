"""RGB-Stacking benchmark constants, code-exact (see docs/contract.md and shared rgb_stacking_spec.md §B).

Everything physical that sim, real cell, policy, recorder and trainer must agree on lives here, with
units in names or comments. Nothing in this module imports ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

# --- Timing (spec §B.4) -------------------------------------------------------------------------
CONTROL_PERIOD_S = 0.05          # s, 20 Hz agent loop
CONTROL_RATE_HZ = 1.0 / CONTROL_PERIOD_S
PHYSICS_TIMESTEP_S = 0.0005      # s, faithful 2 kHz physics (100 substeps per control tick)
EPISODE_STEPS = 400              # control ticks per episode (20 s), fixed length, no early stop
# s: the arm's own command timeout below the safety filter (2 ticks): MoveIt Servo's
# incoming_command_timeout on a real cell (config/real/servo.yaml), the sim bridge's watchdog_s. The
# safety filter's command_timeout_s (its own zero twists) must fire before it.
ARM_COMMAND_TIMEOUT_S = 2 * CONTROL_PERIOD_S

# --- Action (spec §B.5, precision X1) -----------------------------------------------------------
MAX_LINEAR_SPEED_MPS = 0.07      # m/s, per axis in the spec; the effector then caps the norm
MAX_YAW_RATE_RPS = 1.0           # rad/s about the vertical axis
ACTION_DIM = 5                   # [vx, vy, vz, yaw_rate, gripper], agent-normalised to [-1, 1]
ACTION_NAMES = ('vx', 'vy', 'vz', 'yaw_rate', 'gripper')
GRIPPER_OPEN_POSITION_RAD = 0.0  # finger_joint target sent to the gripper forward controller
GRIPPER_CLOSED_POSITION_RAD = 0.8
GRIPPER_CTRL_RANGE = (-255.0, 255.0)   # Robotiq 2F-85 actuator range in the sim (bang-bang ends)

# --- Workspace (spec §B.2) ----------------------------------------------------------------------
BASKET_CENTER_M = (0.60, 0.00, 0.0498)
WORKSPACE_CENTER_M = (0.60, 0.00, 0.1698)
WORKSPACE_SIZE_M = (0.25, 0.25, 0.20)
WORKSPACE_LOW_M = tuple(c - s / 2 for c, s in zip(WORKSPACE_CENTER_M, WORKSPACE_SIZE_M))
WORKSPACE_HIGH_M = tuple(c + s / 2 for c, s in zip(WORKSPACE_CENTER_M, WORKSPACE_SIZE_M))
WRIST_YAW_LIMITS_RAD = (-math.pi / 2, math.pi / 2)   # joint right_j6 kept in this range

# --- Initial-state distribution (spec §B.9) -----------------------------------------------------
PROP_POSITION_LOW_M = (0.50, -0.10, 0.12)
PROP_POSITION_HIGH_M = (0.70, 0.10, 0.12)
TCP_POSITION_LOW_M = (0.5, -0.14, 0.22)
TCP_POSITION_HIGH_M = (0.7, 0.14, 0.43)
TCP_YAW_RANGE_RAD = (-math.pi / 4, math.pi / 4)

# --- Robot (spec §B.6) --------------------------------------------------------------------------
ARM_JOINT_NAMES = ('right_j0', 'right_j1', 'right_j2', 'right_j3', 'right_j4', 'right_j5', 'right_j6')
GRIPPER_JOINT_NAME = 'finger_joint'
ARM_JOINT_VELOCITY_LIMITS_RPS = (1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545)
ARM_EFFORT_LIMITS_NM = (80.0, 80.0, 40.0, 40.0, 9.0, 9.0, 9.0)
ARM_Q_REFERENCE_RAD = (0.0, -0.5186, -0.5294, 1.2209, 0.4086, 1.0783, 0.0)
PINCH_TO_WRIST_M = 0.2012        # along the tool axis

# Grasp flag of the Robotiq object-detection status (spec §B.6).
GRASP_NONE = 1
GRASP_INWARD = 2                 # object detected while closing
GRASP_OUTWARD = 3                # object detected while opening


# --- Cameras (spec §B.3) ------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraSpec:
    """A basket camera: world-frame (base_link) pose, vertical fov. `optical_axis` is the viewing
    direction (MuJoCo cameras look along their -z); `optical_quaternion_xyzw` the orientation of the
    optical frame (REP 103: z forward, x right, y down), from the benchmark's MJCF (the back camera is
    rolled 1.4 deg about its axis)."""

    name: str
    position_m: Tuple[float, float, float]
    optical_axis: Tuple[float, float, float]
    fovy_deg: float
    optical_quaternion_xyzw: Tuple[float, float, float, float]

    @property
    def frame_id(self) -> str:
        return f'{self.name}_optical_frame'

    def focal_length_px(self, height_px: int) -> float:
        return 0.5 * height_px / math.tan(math.radians(self.fovy_deg) / 2)


CAMERAS: Dict[str, CameraSpec] = {
    'basket_front_left': CameraSpec(
        'basket_front_left', (0.970, -0.375, 0.285), (-0.641, 0.632, -0.436), 35.0,
        (-0.78153, -0.32721, 0.20501, 0.49002)),
    'basket_front_right': CameraSpec(
        'basket_front_right', (0.970, 0.375, 0.285), (-0.641, -0.632, -0.436), 35.0,
        (-0.32721, -0.78153, 0.49002, 0.20501)),
    'basket_back_left': CameraSpec(
        'basket_back_left', (0.060, -0.260, 0.440), (0.735, 0.322, -0.597), 30.0,
        (-0.75379, 0.47987, -0.24993, 0.37290)),
}
CAMERA_NAMES = tuple(CAMERAS)
POLICY_CAMERAS = ('basket_front_left', 'basket_front_right')   # used by the vision agents
DEFAULT_IMAGE_SIZE_PX = 128

# --- Objects (spec §B.12) -----------------------------------------------------------------------
OBJECT_COLOURS = ('red', 'green', 'blue')
TEST_TRIPLETS: Dict[str, Tuple[str, str, str]] = {      # (red, green, blue)
    'rgb_test_triplet1': ('r3', 's0', 'b2'),
    'rgb_test_triplet2': ('r5', 'g2', 'b3'),
    'rgb_test_triplet3': ('r6', 'g3', 'b5'),
    'rgb_test_triplet4': ('s0', 'g5', 'b6'),
    'rgb_test_triplet5': ('r2', 'g6', 's0'),
}
RANDOM_TRIPLET_SETS = ('rgb_train_random', 'rgb_heldout_random', 'rgb_test_random')
OBJECT_MASS_KG = 0.2

# --- Rewards (spec §B.10-B.11) ------------------------------------------------------------------
# The five staged terms, in stage order, then the staged reward and the sparse success.
REWARD_STAGE_TERMS = ('reach_grasp', 'lift', 'hover', 'stack', 'stack_leave')
REWARD_TERMS = REWARD_STAGE_TERMS + ('staged', 'sparse_success')
STAGE_THRESHOLD = 0.01
# SAC-X intentions: one per stage term plus the full staged task (index order is the contract).
INTENTIONS = REWARD_STAGE_TERMS + ('staged',)

# --- Observations (spec §B.7, precision X2) -----------------------------------------------------
STATE_STACK = 3                  # frames kept for state signals, index 0 newest
ACTION_STACK = 2                 # frames kept for `action/environment`


@dataclass(frozen=True)
class ObservationKey:
    """One exposed observation: its raw (single-frame) shape, dtype and whether a real cell has it."""

    name: str
    raw_shape: Tuple[int, ...]
    stack: int
    real: bool = True
    dtype: str = 'float32'

    @property
    def shape(self) -> Tuple[int, ...]:
        """Exposed shape after frame stacking (scalars stack to (stack,))."""
        if self.raw_shape == (1,):
            return (self.stack,)
        return (self.stack,) + self.raw_shape


# Order = the released policies' flattening order (precision X2); 292 floats in total.
STATE_OBSERVATIONS: Tuple[ObservationKey, ...] = (
    ObservationKey('action/environment', (8,), ACTION_STACK),
    ObservationKey('gripper/grasp', (1,), STATE_STACK),
    ObservationKey('gripper/joints/angle', (1,), STATE_STACK),
    ObservationKey('gripper/joints/velocity', (1,), STATE_STACK),
    ObservationKey('rgb30_blue/abs_pose', (7,), STATE_STACK, real=False),
    ObservationKey('rgb30_blue/to_pinch', (7,), STATE_STACK, real=False),
    ObservationKey('rgb30_green/abs_pose', (7,), STATE_STACK, real=False),
    ObservationKey('rgb30_green/to_pinch', (7,), STATE_STACK, real=False),
    ObservationKey('rgb30_red/abs_pose', (7,), STATE_STACK, real=False),
    ObservationKey('rgb30_red/to_pinch', (7,), STATE_STACK, real=False),
    ObservationKey('sawyer/joints/angle', (7,), STATE_STACK),
    ObservationKey('sawyer/joints/torque', (7,), STATE_STACK),
    ObservationKey('sawyer/joints/velocity', (7,), STATE_STACK),
    ObservationKey('sawyer/pinch/pose', (7,), STATE_STACK),
    ObservationKey('sawyer/tcp/pose', (7,), STATE_STACK),
    ObservationKey('sawyer/tcp/velocity', (6,), STATE_STACK),
    ObservationKey('wrist/force', (3,), STATE_STACK),
    ObservationKey('wrist/torque', (3,), STATE_STACK),
)
STATE_OBSERVATION_NAMES = tuple(k.name for k in STATE_OBSERVATIONS)
PRIVILEGED_OBSERVATION_NAMES = tuple(k.name for k in STATE_OBSERVATIONS if not k.real)
REAL_STATE_OBSERVATION_NAMES = tuple(k.name for k in STATE_OBSERVATIONS if k.real)


def image_key(camera: str) -> str:
    return f'{camera}/pixels'


def state_size(names=STATE_OBSERVATION_NAMES) -> int:
    """Flattened size of the stacked state observations `names` (292 for the full STATE_ONLY set)."""
    by_name = {k.name: k for k in STATE_OBSERVATIONS}
    return sum(math.prod(by_name[n].shape) for n in names)


# Observation sets of the benchmark code (spec §B.8).
OBSERVATION_SETS: Dict[str, Tuple[str, ...]] = {
    'state_only': STATE_OBSERVATION_NAMES,
    'vision_only': tuple(image_key(c) for c in CAMERA_NAMES),
    'all': STATE_OBSERVATION_NAMES + tuple(image_key(c) for c in CAMERA_NAMES),
    'interactive_imitation_learning': (
        'sawyer/joints/angle', 'gripper/joints/angle', 'sawyer/pinch/pose', 'sawyer/tcp/pose',
        image_key('basket_front_left'), image_key('basket_front_right')),
    'offline_policy_improvement': (
        'sawyer/joints/angle', 'sawyer/joints/velocity', 'gripper/grasp', 'gripper/joints/angle',
        'gripper/joints/velocity', 'sawyer/pinch/pose',
        image_key('basket_front_left'), image_key('basket_front_right')),
}
