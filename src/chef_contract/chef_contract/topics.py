"""Topic names, message types, frames and QoS classes of one RGB-Stacking cell.

All names are *relative*: a cell runs in its own namespace (`/cell0`, `/cell1`, ...), so the same
contract serves one real cell, one sim cell or many sim cells in one graph. Only `/clock` and the
loop's `/chef_loop/progress` are absolute.

This module is ROS-free (types are named as strings); `chef_contract.ros` turns the QoS classes into
rclpy profiles. See docs/contract.md for the prose version of this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from chef_contract.spec import CAMERA_NAMES, CAMERAS

# --- Frames -------------------------------------------------------------------------------------
WORLD_FRAME = 'base_link'              # Sawyer base = benchmark world origin, +x towards the basket
PINCH_FRAME = 'tcp'                    # gripper tool-centre point ("pinch" site in the benchmark)
WRIST_FRAME = 'right_hand'             # arm wrist site ("tcp" site in the benchmark, spec X4)
FT_SENSOR_FRAME = 'ft_sensor'          # FTS-300 measurement frame


def camera_frame(camera: str) -> str:
    return f'{camera}_optical_frame'


@dataclass(frozen=True)
class StaticTransform:
    """One fixed transform: the pose of `child` in `parent` (translation m, rotation x y z w)."""

    parent: str
    child: str
    translation_m: Tuple[float, float, float]
    rotation_xyzw: Tuple[float, float, float, float]


def static_transforms(cameras=CAMERA_NAMES, poses=None) -> Tuple[StaticTransform, ...]:
    """The cell's fixed frame tree: base_link -> each camera's optical frame, at `poses` ({camera:
    (position_m, quaternion_xyzw)}: a real cell's calibration, chef_contract.calibration) or else the
    benchmark's camera pose (spec.CAMERAS). Written as `tf_static` at the head of every bag, so viewers
    (Foxglove's 3D panel) can place the camera images next to the poses, which are all in base_link."""
    def unit(q):
        n = sum(v * v for v in q) ** 0.5
        return tuple(v / n for v in q)
    poses = poses or {}
    return tuple(StaticTransform(WORLD_FRAME, camera_frame(c), tuple(poses[c][0]), unit(poses[c][1]))
                 if c in poses else
                 StaticTransform(WORLD_FRAME, camera_frame(c), CAMERAS[c].position_m,
                                 unit(CAMERAS[c].optical_quaternion_xyzw)) for c in cameras)


# --- QoS classes --------------------------------------------------------------------------------
# Each topic names one class; `chef_contract.ros.qos(cls, role)` builds the rclpy profile.
#   sensor:  publisher RELIABLE depth 100; subscribers BEST_EFFORT depth 10, so they also match real
#            drivers that publish with the `sensor_data` profile.
#   command: RELIABLE, KEEP_LAST 1 (readers; writers keep 100 so slow readers lose nothing); both
#            declare a deadline of 2 control periods so the middleware reports stale commands.
#   event:   RELIABLE, TRANSIENT_LOCAL, KEEP_LAST 50 - late joiners (the recorder) get recent events.
#   latched: RELIABLE, TRANSIENT_LOCAL, KEEP_LAST 1 - state that is set rarely (policy info, e-stop).
#   clock:   BEST_EFFORT KEEP_LAST 1 (what rclpy's TimeSource subscribes with).
QOS_CLASSES = ('sensor', 'command', 'event', 'latched', 'clock')


@dataclass(frozen=True)
class Topic:
    """One topic of the contract."""

    name: str          # relative to the cell namespace (absolute if it starts with '/')
    msg_type: str      # 'pkg/msg/Type'
    qos: str           # one of QOS_CLASSES
    publisher: str     # who publishes it (documentation and static checks)
    description: str
    sim_only: bool = False
    per_tick: bool = False     # published once per control tick by the cell (aligned by the reader)
    real_only: bool = False    # plumbing of the real cell only (drivers, ros2_control); never in sim
    recorded: bool = True      # in the recorder's default selection ('*'); /clock may be listed explicitly


def image_topic(camera: str) -> str:
    return f'camera/{camera}/image_raw'


def camera_info_topic(camera: str) -> str:
    return f'camera/{camera}/camera_info'


def camera_driver_image_topic(camera: str) -> str:
    """Real cell: the camera driver's full-resolution image, input of chef_real's camera_adapter."""
    return f'camera/{camera}/driver/image_raw'


def camera_driver_info_topic(camera: str) -> str:
    return f'camera/{camera}/driver/camera_info'


# Well-known names, importable as constants.
JOINT_STATES = 'joint_states'
WRENCH = 'wrist/wrench'
GRASP_STATUS = 'gripper/grasp_status'
PINCH_POSE = 'tcp/pinch_pose'
WRIST_POSE = 'tcp/wrist_pose'
WRIST_TWIST = 'tcp/wrist_twist'
JOINT_COMMAND_APPLIED = 'joint_command/applied'
OBJECT_POSES = 'sim/object_poses'
REWARD_TERMS = 'reward/terms'
POLICY_TWIST = 'policy/twist_cmd'
POLICY_GRIPPER = 'policy/gripper_cmd'
POLICY_STEP = 'policy/step_info'
POLICY_INFO = 'policy/info'
TWIST_CMD = 'servo_node/delta_twist_cmds'
GRIPPER_CMD = 'gripper_controller/commands'
ESTOP = 'safety/estop'
SAFETY_STATUS = 'safety/status'
EPISODE_EVENTS = 'episode/events'
EPISODE_COMMAND = 'episode/command'
CHECKPOINT_ANNOUNCE = 'trainer/checkpoint'
RECORDER_STATUS = 'recorder/status'
FLEET_PROGRESS = '/chef_loop/progress'    # absolute: the loop's, not a cell's
TF_STATIC = 'tf_static'
CLOCK = '/clock'
# Real-cell plumbing (chef_real, config/graphs/real.yaml): ros2_control and robot description.
ROBOT_DESCRIPTION = 'robot_description'
ARM_POSITION_COMMAND = 'arm_position_controller/commands'
TRACKER_OBJECT_POSES = 'tracker/object_poses'

# Named stamped vectors: topics whose message is a sensor_msgs/JointState used as a *stamped, named
# vector* (name = labels, position = values). Standard messages have no stamped float array, and
# every per-tick stream must carry a header stamp so the reader can align it by control tick.
NAMED_VECTOR_TOPICS = (GRASP_STATUS, REWARD_TERMS)

_T = Topic
TOPICS: Tuple[Topic, ...] = tuple(
    [_T(image_topic(c), 'sensor_msgs/msg/Image', 'sensor', 'cell',
        f'{c} RGB image, rgb8, 128x128 by default', per_tick=True) for c in CAMERA_NAMES]
    + [_T(camera_info_topic(c), 'sensor_msgs/msg/CameraInfo', 'sensor', 'cell',
          f'{c} intrinsics (plumb_bob, no distortion in sim)', per_tick=True) for c in CAMERA_NAMES]
    + [
        _T(JOINT_STATES, 'sensor_msgs/msg/JointState', 'sensor', 'cell',
           'arm right_j0..right_j6 + finger_joint: position rad, velocity rad/s, effort N m', per_tick=True),
        _T(WRENCH, 'geometry_msgs/msg/WrenchStamped', 'sensor', 'cell',
           'FTS-300 wrench in ft_sensor frame: N, N m', per_tick=True),
        _T(GRASP_STATUS, 'sensor_msgs/msg/JointState', 'sensor', 'cell',
           "named vector ['grasp_status']: 1 none, 2 grasp while closing, 3 while opening", per_tick=True),
        _T(PINCH_POSE, 'geometry_msgs/msg/PoseStamped', 'sensor', 'cell',
           'gripper TCP ("pinch") pose in base_link', per_tick=True),
        _T(WRIST_POSE, 'geometry_msgs/msg/PoseStamped', 'sensor', 'cell',
           'arm wrist site pose in base_link', per_tick=True),
        _T(WRIST_TWIST, 'geometry_msgs/msg/TwistStamped', 'sensor', 'cell',
           'wrist site velocity in base_link: m/s, rad/s', per_tick=True),
        _T(JOINT_COMMAND_APPLIED, 'sensor_msgs/msg/JointState', 'sensor', 'cell',
           'joint-level command last sent to the actuators: velocity = 7 arm joint velocities rad/s, '
           'position[finger_joint] = gripper command in [-255, 255] (benchmark action/environment)',
           per_tick=True),
        _T(OBJECT_POSES, 'geometry_msgs/msg/PoseArray', 'sensor', 'sim bridge | pixel reward node',
           'red, green, blue object poses in base_link (sim: ground truth; real: estimated)',
           sim_only=False, per_tick=True),
        _T(REWARD_TERMS, 'sensor_msgs/msg/JointState', 'sensor', 'sim bridge | pixel reward node',
           'named vector of REWARD_TERMS computed on the observation of this tick', per_tick=True),
        _T(POLICY_TWIST, 'geometry_msgs/msg/TwistStamped', 'command', 'policy',
           'raw policy end-effector velocity (base_link, m/s, rad/s); only the safety filter listens'),
        _T(POLICY_GRIPPER, 'std_msgs/msg/Float64MultiArray', 'command', 'policy',
           'raw policy gripper target [finger_joint rad]; only the safety filter listens'),
        _T(POLICY_STEP, 'std_msgs/msg/String', 'command', 'policy',
           'JSON per tick: stamp_ns, tick, intention, normalised action, inference_ms'),
        _T(POLICY_INFO, 'std_msgs/msg/String', 'latched', 'policy',
           'JSON: policy_id, checkpoint_sha256, config, deterministic'),
        _T(TWIST_CMD, 'geometry_msgs/msg/TwistStamped', 'command', 'safety filter',
           'safe end-effector velocity, the topic MoveIt Servo listens on'),
        _T(GRIPPER_CMD, 'std_msgs/msg/Float64MultiArray', 'command', 'safety filter',
           'safe gripper target [finger_joint rad], ros2_control forward command controller input'),
        _T(ESTOP, 'std_msgs/msg/Bool', 'latched', 'operator',
           'True latches the e-stop; only the safety reset service clears it'),
        _T(SAFETY_STATUS, 'std_msgs/msg/String', 'latched', 'safety filter',
           'JSON: state (ok | stale | estop), counters of clamped / zeroed / rejected commands'),
        _T(EPISODE_EVENTS, 'std_msgs/msg/String', 'event', 'sim bridge | episode manager',
           'JSON EpisodeEvent: start / end / abort, with the episode metadata'),
        _T(EPISODE_COMMAND, 'std_msgs/msg/String', 'event', 'chef loop | operator',
           'JSON EpisodeCommand: start (triplet, seed, tags) / stop'),
        _T(CHECKPOINT_ANNOUNCE, 'std_msgs/msg/String', 'latched', 'trainer',
           'JSON: path and sha256 of the newest checkpoint; the policy hot-reloads it'),
        _T(RECORDER_STATUS, 'std_msgs/msg/String', 'latched', 'recorder',
           'JSON: ready (matched to a publisher on every recorded topic it requires), unmatched topics, '
           'pid; a lockstep sim cell starts no episode before its recorder is ready', recorded=False),
        _T(CLOCK, 'rosgraph_msgs/msg/Clock', 'clock', 'sim bridge (lockstep)', 'simulation time',
           recorded=False),
        _T(FLEET_PROGRESS, 'std_msgs/msg/String', 'latched', 'chef loop (CellFleet)',
           'JSON FleetProgress: the episode jobs of the running session, done / wanted, per cell what runs '
           '(read by chef status)', recorded=False),
        # written by the recorder into each bag (no DDS publisher: tf2_msgs is not among the PyPI
        # ROS wheels); relative like every cell topic, so cells do not share one frame tree
        _T(TF_STATIC, 'tf2_msgs/msg/TFMessage', 'latched', 'recorder (head of every bag)',
           'static_transforms(): base_link -> <camera>_optical_frame (the benchmark camera poses)',
           recorded=False),
        # --- real cell only: driver and ros2_control plumbing (per_tick False: not observations) ---
        _T(ROBOT_DESCRIPTION, 'std_msgs/msg/String', 'latched', 'robot_state_publisher (real)',
           'URDF of the cell; ros2_control controller_manager reads it', real_only=True),
        _T(ARM_POSITION_COMMAND, 'std_msgs/msg/Float64MultiArray', 'command', 'MoveIt Servo (real)',
           'joint position targets right_j0..right_j6 (rad), input of the ros2_control forward '
           'position group controller; the state adapter derives joint_command/applied from it',
           real_only=True),
        _T(TRACKER_OBJECT_POSES, 'geometry_msgs/msg/PoseArray', 'sensor', 'object tracker (real) | hardware emulator',
           'red, green, blue object poses with orientation from an external tracker (the MuJoCo emulator: '
           'ground truth); a privileged policy can be remapped onto it (real graph: policy_object_poses)',
           real_only=True),
    ]
    + [_T(camera_driver_image_topic(c), 'sensor_msgs/msg/Image', 'sensor', 'camera driver (real)',
          f'{c} full-resolution driver image; chef_real camera_adapter crops/resizes it',
          real_only=True) for c in CAMERA_NAMES]
    + [_T(camera_driver_info_topic(c), 'sensor_msgs/msg/CameraInfo', 'sensor', 'camera driver (real)',
          f'{c} full-resolution calibration published by the driver', real_only=True)
       for c in CAMERA_NAMES])

TOPICS_BY_NAME: Dict[str, Topic] = {t.name: t for t in TOPICS}

# Services (relative to the cell namespace, like topics): name -> (srv type, server, description).
SAFETY_RESET = 'safety/reset'
EPISODE_START = 'episode/start'
EPISODE_STOP = 'episode/stop'
SERVICES: Dict[str, Tuple[str, str, str]] = {
    SAFETY_RESET: ('std_srvs/srv/Trigger', 'safety filter',
                   'clears a latched e-stop; refused while safety/estop still reads True'),
    EPISODE_START: ('std_srvs/srv/Trigger', 'sim bridge',
                    'starts an episode with the cell\'s configured triplet and next seed (refused while one runs)'),
    EPISODE_STOP: ('std_srvs/srv/Trigger', 'sim bridge',
                   'aborts the running episode (abort event, reason "stop service")'),
}
PER_TICK_TOPICS = tuple(t.name for t in TOPICS if t.per_tick)

# --- Per-tick topics, the one list ----------------------------------------------------------------
# The sim bridge publishes these, the real cell's drivers + adapters publish the same, the policy node
# and the dataset reader align them by tick, the recorder expects them. Every module that needs one of
# these sets takes it from here (never a literal list of names).
# Robot state of one observation frame (`chef_contract.frames.messages_to_frame`), in frame order.
STATE_TOPICS: Tuple[str, ...] = (JOINT_STATES, WRENCH, GRASP_STATUS, PINCH_POSE, WRIST_POSE, WRIST_TWIST,
                                 JOINT_COMMAND_APPLIED)
# Of those, what a real cell's drivers publish (joint_state_broadcaster, F/T broadcaster); chef_real's
# state adapter derives the rest (DERIVED_STATE_TOPICS) from them and from the commands.
DRIVER_STATE_TOPICS: Tuple[str, ...] = (JOINT_STATES, WRENCH)
DERIVED_STATE_TOPICS: Tuple[str, ...] = tuple(t for t in STATE_TOPICS if t not in DRIVER_STATE_TOPICS)


def observation_topics(cameras=(), objects: bool = False) -> Tuple[str, ...]:
    """Topics of one observation frame: `cameras`' images, the robot state, object poses if asked."""
    return (tuple(image_topic(c) for c in cameras) + STATE_TOPICS + ((OBJECT_POSES,) if objects else ()))


def tick_topics(cameras=CAMERA_NAMES) -> Tuple[str, ...]:
    """Every topic a cell publishes once per control tick with `cameras` on: the robot state, object
    poses, reward terms, then image + camera_info per camera (a subset of PER_TICK_TOPICS)."""
    out = STATE_TOPICS + (OBJECT_POSES, REWARD_TERMS)
    for c in cameras:
        out += (image_topic(c), camera_info_topic(c))
    return out


def topic(name: str) -> Topic:
    """Look a topic up by its contract name; unknown names are an error, never a silent default."""
    try:
        return TOPICS_BY_NAME[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(name, TOPICS_BY_NAME, n=3)
        hint = f' Did you mean: {", ".join(close)}?' if close else ''
        raise KeyError(f'{name!r} is not a topic of the CHEF contract.{hint}') from None


def is_contract_topic(name: str) -> bool:
    """True if `name` (relative, or absolute with a cell namespace) is a contract topic."""
    if name in TOPICS_BY_NAME:
        return True
    parts = name.lstrip('/').split('/', 1)
    return len(parts) == 2 and parts[1] in TOPICS_BY_NAME
