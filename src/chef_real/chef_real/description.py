"""Robot description of the real RGB-Stacking cell, generated from the benchmark's own models.

    python -m chef_real.description --write     # regenerate config/real/robot/*.urdf, *.srdf
    python -m chef_real.description --check     # exit 1 if the committed files are stale

Sources (all read here, nothing downloaded):
  * Sawyer arm kinematics - joint origins, axes and ranges - from the Sawyer MJCF that the benchmark
    uses (dm_robotics vendor `sawyer.xml`, stack_recipe.md §6); velocity and effort limits from
    chef_contract.spec (spec §B.6);
  * FTS-300 and Robotiq 2F-85 mounting offsets from their dm_robotics MJCF files
    (wrist -> F/T frame 0.0215 m, wrist -> gripper TCP 0.2012 m = spec PINCH_TO_WRIST_M);
  * basket collision geometry from dm_robotics rgb_basket.py (spec §B.2), so MoveIt Servo's collision
    checking and moveit_py planning keep the arm off the basket walls and camera struts;
  * camera optical frames from config/real/cameras.yaml (calibration).

Frames match the sim and the contract: `base_link` (world origin, +x towards the basket),
`right_hand` (wrist site, contract WRIST_FRAME), `ft_sensor`, `tcp` (gripper pinch point,
PINCH_FRAME), `<camera>_optical_frame`. Joints: right_j0..right_j6 and finger_joint.
Links carry simple primitive visuals/collisions (no meshes); docs/real_cell.md says how to swap in
the official sawyer_description and robotiq_description meshes on a real install.

Two variants differ only in their <ros2_control> hardware: `rgb_cell.real.urdf` (arm through
`$(arm_hardware_plugin)`, gripper robotiq_driver, F/T robotiq_ft_sensor_hardware; `$(...)` are graph
arguments substituted by the graph's file_parameters) and `rgb_cell.mock.urdf`
(mock_components/GenericSystem for a dry run). A third, `rgb_cell.mujoco.urdf`, describes the cell
that chef_sim's MuJoCo hardware emulator stands in for (`hardware:=mujoco`): no ros2_control runs
then, and its <ros2_control> block only documents the interfaces the emulator serves on topics.
"""

from __future__ import annotations

import argparse
import math
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from chef_contract import topics as T
from chef_contract.spec import (
    ARM_EFFORT_LIMITS_NM, ARM_JOINT_NAMES, ARM_JOINT_VELOCITY_LIMITS_RPS, ARM_Q_REFERENCE_RAD,
    BASKET_CENTER_M, GRIPPER_CLOSED_POSITION_RAD, GRIPPER_JOINT_NAME, GRIPPER_OPEN_POSITION_RAD,
    PINCH_TO_WRIST_M,
)
from chef_real.transforms import axis_angle_matrix, matrix_to_rpy, quat_to_matrix

ROBOT_NAME = 'rgb_cell'
ARM_GROUP = 'right_arm'
GRIPPER_GROUP = 'gripper'
ARM_BASE_LINK = 'right_arm_base_link'
ARM_LINKS = ('right_l0', 'right_l1', 'right_l2', 'right_l3', 'right_l4', 'right_l5', 'right_l6')
GRIPPER_BASE_LINK = 'robotiq_arg2f_base_link'
FINGER_LINK = 'right_outer_knuckle'
BASKET_LINK = 'basket'
HARDWARE_VARIANTS = ('real', 'mock', 'mujoco')

# FTS-300 + 2F-85 stack along the wrist's z axis (dm_robotics robotiq_fts300.xml, robotiq_2f85.xml).
FT_FRAME_Z_M = 0.0415 - 0.02                   # fts300_body + ft_sensor_frame_site
FT_BODY_LENGTH_M = 0.0415                      # coupling + sensor body
GRIPPER_BASE_Z_M = 0.0415 + 0.007 + 0.0038     # attachment site + base_mount + base
FT_YAW_RAD = math.pi / 2                       # dm_robotics mounts the FTS-300 turned +90 deg about z
GRIPPER_YAW_RAD = FT_YAW_RAD - math.pi         # then two -90 deg turns about z (base_mount, base)
PINCH_Z_IN_GRIPPER_M = 0.1489                  # pinch_site in the gripper base
FINGER_JOINT_XYZ_M = (0.0, 0.0306011, 0.054904)   # right_driver body in the gripper base
assert abs(GRIPPER_BASE_Z_M + PINCH_Z_IN_GRIPPER_M - PINCH_TO_WRIST_M) < 1e-9   # spec §B.6: 0.2012 m
FINGER_VELOCITY_RPS = 2.0                      # 2F-85 at full speed closes 0.8 rad in ~0.5 s
FINGER_EFFORT = 100.0

HOME_TCP_POSITION_M = (0.60, 0.0, 0.30)    # above the basket centre, gripper pointing down

_MJCF_TO_URDF_LINK = {'arm_base_link': ARM_BASE_LINK, 'head': 'head', 'hand': 'right_hand',
                      **{f'l{i}': ARM_LINKS[i] for i in range(7)}}

# Primitive collision shapes per Sawyer link, from the primitive geoms left (commented) in sawyer.xml:
# (kind, size, xyz) with kind sphere (r), cylinder (r, length) along the link's z.
_SAWYER_SHAPES = {
    ARM_BASE_LINK: ('cylinder', (0.08, 0.16), (0.0, 0.0, 0.04)),
    'right_l0': ('sphere', (0.07,), (0.081, 0.0, 0.237)),
    'head': ('sphere', (0.12,), (0.0, 0.0, 0.08)),
    'right_l1': ('sphere', (0.07,), (0.0, 0.0, 0.1225)),
    'right_l2': ('cylinder', (0.06, 0.35), (0.0, 0.0, 0.14)),
    'right_l3': ('sphere', (0.06,), (0.0, -0.01, -0.12)),
    'right_l4': ('cylinder', (0.045, 0.36), (0.0, 0.0, 0.14)),
    'right_l5': ('sphere', (0.06,), (0.01, 0.0, 0.09)),
    'right_l6': ('cylinder', (0.065, 0.05), (0.0, 0.0, -0.005)),
    'right_hand': ('cylinder', (0.06, 0.04), (0.0, 0.0, 0.02)),
}


def _dm_robotics_dir(sub: str) -> Path:
    import importlib.util
    spec = importlib.util.find_spec('dm_robotics')
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError('dm_robotics is not installed (requirements-nodeps.txt: dm-robotics-moma)')
    return Path(list(spec.submodule_search_locations)[0]) / sub


def sawyer_mjcf_path() -> Path:
    return _dm_robotics_dir('moma/models/vendor/rethink/sawyer_description/mjcf/sawyer.xml')


@dataclass
class ArmJoint:
    name: str
    parent: str
    child: str
    xyz: Tuple[float, float, float]
    rotation: np.ndarray
    axis: Tuple[float, float, float]
    lower: float
    upper: float
    velocity: float
    effort: float


def sawyer_kinematics(mjcf: Optional[Path] = None) -> Tuple[List[ArmJoint], Dict[str, tuple]]:
    """The 7 arm joints (parent/child links, origins, axes, ranges) and the fixed links (head, hand)."""
    root = ET.parse(mjcf or sawyer_mjcf_path()).getroot()
    body = root.find('worldbody/body')
    if body is None or body.get('name') != 'arm_base_link':
        raise RuntimeError('unexpected sawyer.xml layout: no arm_base_link body')
    joints: List[ArmJoint] = []
    fixed: Dict[str, tuple] = {}
    limits = dict(zip(ARM_JOINT_NAMES, zip(ARM_JOINT_VELOCITY_LIMITS_RPS, ARM_EFFORT_LIMITS_NM)))

    def walk(parent_el, parent_link):
        for child in parent_el.findall('body'):
            name = child.get('name')
            link = _MJCF_TO_URDF_LINK.get(name)
            if link is None:
                continue
            xyz = tuple(float(v) for v in child.get('pos', '0 0 0').split())
            rot = quat_to_matrix([float(v) for v in child.get('quat', '1 0 0 0').split()])
            j = child.find('joint')
            if j is not None:
                lo, hi = (float(v) for v in j.get('range').split())
                vel, eff = limits[j.get('name')]
                joints.append(ArmJoint(j.get('name'), parent_link, link, xyz, rot,
                                       tuple(float(v) for v in j.get('axis', '0 0 1').split()),
                                       lo, hi, vel, eff))
            else:
                fixed[link] = (parent_link, xyz, rot)
            walk(child, link)

    walk(body, ARM_BASE_LINK)
    names = tuple(j.name for j in joints)
    if names != ARM_JOINT_NAMES:
        raise RuntimeError(f'sawyer.xml joints {names} differ from the contract {ARM_JOINT_NAMES}')
    return joints, fixed


def home_joint_positions(urdf_text: str) -> Tuple[float, ...]:
    """Arm joints (rad) that put the TCP at HOME_TCP_POSITION_M pointing straight down, found by IK
    from the benchmark's null-space reference posture (spec ARM_Q_REFERENCE_RAD) and keeping its
    heading about the vertical. Rounded to 1e-4 rad so the generated files are stable."""
    from chef_real.kinematics import RobotModel, solve_ik
    from chef_real.transforms import pose_matrix
    model = RobotModel(urdf_text)
    q_ref = dict(zip(ARM_JOINT_NAMES, ARM_Q_REFERENCE_RAD))
    x = model.link_pose(T.PINCH_FRAME, q_ref)[:3, 0]
    heading = math.atan2(x[1], x[0])
    down = axis_angle_matrix((0, 0, 1), heading) @ np.diag([1.0, -1.0, -1.0])
    q = solve_ik(model, T.PINCH_FRAME, pose_matrix(HOME_TCP_POSITION_M, down), ARM_JOINT_NAMES, q_ref)
    return tuple(round(q[n], 4) for n in ARM_JOINT_NAMES)


# --- XML helpers ----------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    s = f'{v:.6f}'.rstrip('0').rstrip('.')
    return '0' if s in ('-0', '') else s


def _origin(parent: ET.Element, xyz: Sequence[float], rotation: Optional[np.ndarray] = None):
    rpy = matrix_to_rpy(rotation) if rotation is not None else (0.0, 0.0, 0.0)
    ET.SubElement(parent, 'origin', xyz=' '.join(_fmt(v) for v in xyz), rpy=' '.join(_fmt(v) for v in rpy))


def _shape(parent: ET.Element, kind: str, size: Sequence[float], xyz, rotation=None, material=None,
           visual: bool = True, collision: bool = True):
    for tag, on in (('visual', visual), ('collision', collision)):
        if not on:
            continue
        el = ET.SubElement(parent, tag)
        _origin(el, xyz, rotation)
        g = ET.SubElement(ET.SubElement(el, 'geometry'), kind)
        if kind == 'sphere':
            g.set('radius', _fmt(size[0]))
        elif kind == 'cylinder':
            g.set('radius', _fmt(size[0]))
            g.set('length', _fmt(size[1]))
        else:
            g.set('size', ' '.join(_fmt(v) for v in size))
        if tag == 'visual' and material:
            ET.SubElement(el, 'material', name=material)


def _link(robot: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(robot, 'link', name=name)


def _fixed(robot: ET.Element, name: str, parent: str, child: str, xyz, rotation=None):
    j = ET.SubElement(robot, 'joint', name=name, type='fixed')
    _origin(j, xyz, rotation)
    ET.SubElement(j, 'parent', link=parent)
    ET.SubElement(j, 'child', link=child)


def _capsule_as_cylinder(fromto: Sequence[float], radius: float):
    a, b = np.array(fromto[:3]), np.array(fromto[3:])
    d = b - a
    length = float(np.linalg.norm(d))
    z = d / length
    axis = np.cross([0, 0, 1.0], z)
    angle = math.acos(max(-1.0, min(1.0, z[2])))
    rot = axis_angle_matrix(axis, angle) if np.linalg.norm(axis) > 1e-9 else np.eye(3)
    return (radius, length + 2 * radius), tuple((a + b) / 2), rot


# Basket collision geometry in the basket frame (centre of the floor's top face), from rgb_basket.py
# (its collision body is turned +90 deg about z relative to the basket frame; applied below).
_BASKET_BOXES = [   # (half sizes, pos, axis, angle)
    ((0.25, 0.25, 0.02), (0.0, 0.0, -0.02), (1, 0, 0), 0.0),
    ((0.20, 0.40, 0.005), (-0.28, 0.0, 0.07), (0, 1, 0), 0.44506),
    ((0.20, 0.40, 0.005), (0.28, 0.0, 0.07), (0, 1, 0), 2.69653),
    ((0.40, 0.20, 0.005), (0.0, -0.28, 0.07), (1, 0, 0), 2.69653),
    ((0.40, 0.20, 0.005), (0.0, 0.28, 0.07), (1, 0, 0), 0.44506),
]
_BASKET_CAPSULES = [   # (fromto, radius): struts and camera posts
    ((0.42, -0.42, 0.15, 0.42, -0.42, 0.25), 0.06), ((0.43, -0.43, 0.28, 0.36, -0.36, 0.24), 0.04),
    ((-0.42, -0.42, 0.15, -0.42, -0.42, 0.25), 0.06), ((-0.43, -0.43, 0.28, -0.36, -0.36, 0.24), 0.04),
    ((-0.28, 0.57, 0.10, -0.28, 0.57, 0.35), 0.06), ((-0.28, 0.57, 0.15, -0.28, 0.43, 0.15), 0.06),
    ((-0.285, 0.6, 0.42, -0.255, 0.53, 0.36), 0.04),
    ((0.4, 0.42, 0.15, -0.4, 0.42, 0.15), 0.05), ((0.4, -0.42, 0.15, -0.4, -0.42, 0.15), 0.05),
    ((-0.42, 0.4, 0.15, -0.42, -0.4, 0.15), 0.05), ((0.42, 0.4, 0.15, 0.42, -0.4, 0.15), 0.05),
]
_BASKET_TURN = axis_angle_matrix((0, 0, 1), math.pi / 2)


def _basket(robot: ET.Element):
    link = _link(robot, BASKET_LINK)
    for half, pos, axis, angle in _BASKET_BOXES:
        rot = _BASKET_TURN @ axis_angle_matrix(axis, angle)
        _shape(link, 'box', [2 * h for h in half], _BASKET_TURN @ np.array(pos), rot, 'basket_grey')
    for fromto, r in _BASKET_CAPSULES:
        size, centre, rot = _capsule_as_cylinder(fromto, r)
        _shape(link, 'cylinder', size, _BASKET_TURN @ np.array(centre), _BASKET_TURN @ rot, 'strut_grey')
    _fixed(robot, 'basket_joint', T.WORLD_FRAME, BASKET_LINK, BASKET_CENTER_M)


# --- ros2_control -------------------------------------------------------------------------------
def _iface(parent, tag, name, initial=None):
    el = ET.SubElement(parent, tag, name=name)
    if initial is not None:
        ET.SubElement(el, 'param', name='initial_value').text = _fmt(initial)
    return el


def _ros2_control(robot: ET.Element, hardware: str, home: Sequence[float]):
    if hardware not in HARDWARE_VARIANTS:
        raise ValueError(f'hardware must be one of {HARDWARE_VARIANTS}')
    ft_ifaces = [f'force.{a}' for a in 'xyz'] + [f'torque.{a}' for a in 'xyz']

    def joints(block, arm: bool, gripper: bool, initial: bool):
        if arm:
            for name, q0 in zip(ARM_JOINT_NAMES, home):
                j = ET.SubElement(block, 'joint', name=name)
                _iface(j, 'command_interface', 'position')
                _iface(j, 'state_interface', 'position', q0 if initial else None)
                _iface(j, 'state_interface', 'velocity', 0.0 if initial else None)
                _iface(j, 'state_interface', 'effort', 0.0 if initial else None)
        if gripper:
            j = ET.SubElement(block, 'joint', name=GRIPPER_JOINT_NAME)
            _iface(j, 'command_interface', 'position')
            _iface(j, 'state_interface', 'position', GRIPPER_OPEN_POSITION_RAD if initial else None)
            _iface(j, 'state_interface', 'velocity', 0.0 if initial else None)

    def sensor(block):
        s = ET.SubElement(block, 'sensor', name=T.FT_SENSOR_FRAME)
        for i in ft_ifaces:
            _iface(s, 'state_interface', i)
        ET.SubElement(s, 'param', name='frame_id').text = T.FT_SENSOR_FRAME

    if hardware == 'mujoco':
        block = ET.SubElement(robot, 'ros2_control', name='rgb_cell_mujoco', type='system')
        block.append(ET.Comment(' Not loaded by ros2_control: chef_sim hardware_emulator + servo_emulator serve '
                                'these interfaces as the controllers topics (docs/real_cell.md, hardware:=mujoco). '))
        hw = ET.SubElement(block, 'hardware')
        ET.SubElement(hw, 'plugin').text = 'chef_sim/hardware_emulator'
        joints(block, True, True, True)
        sensor(block)
        return
    if hardware == 'mock':
        block = ET.SubElement(robot, 'ros2_control', name='rgb_cell_mock', type='system')
        hw = ET.SubElement(block, 'hardware')
        ET.SubElement(hw, 'plugin').text = 'mock_components/GenericSystem'
        ET.SubElement(hw, 'param', name='calculate_dynamics').text = 'true'
        joints(block, True, True, True)
        sensor(block)
        return
    arm = ET.SubElement(robot, 'ros2_control', name='sawyer_arm', type='system')
    hw = ET.SubElement(arm, 'hardware')
    ET.SubElement(hw, 'plugin').text = '$(arm_hardware_plugin)'
    ET.SubElement(hw, 'param', name='robot_ip').text = '$(robot_ip)'
    # topic_based_ros2_control/TopicBasedSystem (default plugin): the Intera relay's topics.
    ET.SubElement(hw, 'param', name='joint_commands_topic').text = '$(arm_command_topic)'
    ET.SubElement(hw, 'param', name='joint_states_topic').text = '$(arm_state_topic)'
    joints(arm, True, False, False)
    grip = ET.SubElement(robot, 'ros2_control', name='robotiq_2f85', type='system')
    hw = ET.SubElement(grip, 'hardware')
    ET.SubElement(hw, 'plugin').text = 'robotiq_driver/RobotiqGripperHardwareInterface'
    ET.SubElement(hw, 'param', name='COM_port').text = '$(gripper_port)'
    ET.SubElement(hw, 'param', name='gripper_closed_position').text = _fmt(GRIPPER_CLOSED_POSITION_RAD)
    ET.SubElement(hw, 'param', name='gripper_speed_multiplier').text = '1.0'
    ET.SubElement(hw, 'param', name='gripper_force_multiplier').text = '0.5'
    joints(grip, False, True, False)
    ft = ET.SubElement(robot, 'ros2_control', name='robotiq_fts300', type='sensor')
    hw = ET.SubElement(ft, 'hardware')
    ET.SubElement(hw, 'plugin').text = 'robotiq_ft_sensor_hardware/RobotiqFTSensorHardware'
    ET.SubElement(hw, 'param', name='use_fake_mode').text = 'false'
    ET.SubElement(hw, 'param', name='max_retries').text = '3'
    ET.SubElement(hw, 'param', name='read_rate').text = '100'
    ET.SubElement(hw, 'param', name='ftdi_id').text = '$(ft_sensor_id)'
    sensor(ft)


# --- URDF ---------------------------------------------------------------------------------------
def build_urdf(hardware: str, cameras: Optional[Dict[str, np.ndarray]] = None,
               mjcf: Optional[Path] = None, home: Optional[Sequence[float]] = None) -> str:
    """URDF text of the cell. `cameras`: {name: 4x4 optical frame pose in base_link}; `home`: arm
    joints the mock hardware starts at (default: computed by home_joint_positions)."""
    arm_joints, fixed = sawyer_kinematics(mjcf)
    robot = ET.Element('robot', name=ROBOT_NAME)
    robot.append(ET.Comment(' GENERATED by chef_real.description (python -m chef_real.description, write mode); do not edit. '
                            'Kinematics: dm_robotics sawyer.xml; limits: chef_contract.spec. '))
    for name, rgba in (('sawyer_red', '0.5 0.1 0.1 1'), ('dark_grey', '0.2 0.2 0.2 1'),
                       ('basket_grey', '0.6 0.6 0.65 0.4'), ('strut_grey', '0.4 0.4 0.4 1')):
        ET.SubElement(ET.SubElement(robot, 'material', name=name), 'color', rgba=rgba)

    _link(robot, T.WORLD_FRAME)
    for name in (ARM_BASE_LINK,) + ARM_LINKS + ('head', 'right_hand'):
        link = _link(robot, name)
        kind, size, xyz = _SAWYER_SHAPES[name]
        _shape(link, kind, size, xyz, material='sawyer_red' if name != 'head' else 'dark_grey')
    _fixed(robot, 'right_arm_mount', T.WORLD_FRAME, ARM_BASE_LINK, (0, 0, 0))
    for j in arm_joints:
        el = ET.SubElement(robot, 'joint', name=j.name, type='revolute')
        _origin(el, j.xyz, j.rotation)
        ET.SubElement(el, 'parent', link=j.parent)
        ET.SubElement(el, 'child', link=j.child)
        ET.SubElement(el, 'axis', xyz=' '.join(_fmt(v) for v in j.axis))
        ET.SubElement(el, 'limit', lower=_fmt(j.lower), upper=_fmt(j.upper), velocity=_fmt(j.velocity),
                      effort=_fmt(j.effort))
    for link, (parent, xyz, rot) in fixed.items():
        _fixed(robot, f'{link}_joint', parent, link, xyz, rot)

    # F/T sensor and gripper, stacked on the wrist (right_hand) along its z axis.
    ft_body = _link(robot, 'fts300_body')
    _shape(ft_body, 'cylinder', (0.0375, FT_BODY_LENGTH_M), (0, 0, FT_BODY_LENGTH_M / 2), material='dark_grey')
    ft_turn = axis_angle_matrix((0, 0, 1), FT_YAW_RAD)
    _fixed(robot, 'fts300_mount', T.WRIST_FRAME, 'fts300_body', (0, 0, 0), ft_turn)
    _link(robot, T.FT_SENSOR_FRAME)
    _fixed(robot, 'ft_sensor_joint', T.WRIST_FRAME, T.FT_SENSOR_FRAME, (0, 0, FT_FRAME_Z_M), ft_turn)
    gbase = _link(robot, GRIPPER_BASE_LINK)
    _shape(gbase, 'cylinder', (0.04, 0.085), (0, 0, 0.0425), material='dark_grey')
    _shape(gbase, 'box', (0.025, 0.095, 0.065), (0, 0, 0.1165), material='dark_grey')   # finger envelope
    _fixed(robot, 'gripper_mount', T.WRIST_FRAME, GRIPPER_BASE_LINK, (0, 0, GRIPPER_BASE_Z_M),
           axis_angle_matrix((0, 0, 1), GRIPPER_YAW_RAD))
    knuckle = _link(robot, FINGER_LINK)
    _shape(knuckle, 'box', (0.01, 0.01, 0.04), (0, 0.01, 0.02), material='dark_grey', collision=False)
    fj = ET.SubElement(robot, 'joint', name=GRIPPER_JOINT_NAME, type='revolute')
    _origin(fj, FINGER_JOINT_XYZ_M)
    ET.SubElement(fj, 'parent', link=GRIPPER_BASE_LINK)
    ET.SubElement(fj, 'child', link=FINGER_LINK)
    ET.SubElement(fj, 'axis', xyz='1 0 0')
    ET.SubElement(fj, 'limit', lower=_fmt(GRIPPER_OPEN_POSITION_RAD), upper=_fmt(GRIPPER_CLOSED_POSITION_RAD),
                  velocity=_fmt(FINGER_VELOCITY_RPS), effort=_fmt(FINGER_EFFORT))
    _link(robot, T.PINCH_FRAME)
    _fixed(robot, 'tcp_joint', GRIPPER_BASE_LINK, T.PINCH_FRAME, (0, 0, PINCH_Z_IN_GRIPPER_M))

    _basket(robot)
    for name, pose in sorted((cameras or {}).items()):
        frame = T.camera_frame(name)
        _link(robot, frame)
        _fixed(robot, f'{frame}_joint', T.WORLD_FRAME, frame, pose[:3, 3], pose[:3, :3])

    if home is None:
        ET.indent(robot, space='  ')
        home = home_joint_positions('<?xml version="1.0"?>\n' + ET.tostring(robot, encoding='unicode'))
    _ros2_control(robot, hardware, home)
    ET.indent(robot, space='  ')
    return '<?xml version="1.0"?>\n' + ET.tostring(robot, encoding='unicode') + '\n'


# --- SRDF ---------------------------------------------------------------------------------------
def build_srdf(urdf_text: str) -> str:
    """Semantic description: arm group base_link -> right_hand (Servo's planning frame is the chain
    base, base_link), gripper group, named states, and collision pairs MoveIt may skip."""
    from chef_real.kinematics import RobotModel
    model = RobotModel(urdf_text)
    robot = ET.Element('robot', name=ROBOT_NAME)
    robot.append(ET.Comment(' GENERATED by chef_real.description (python -m chef_real.description, write mode); do not edit. '))
    g = ET.SubElement(robot, 'group', name=ARM_GROUP)
    ET.SubElement(g, 'chain', base_link=T.WORLD_FRAME, tip_link=T.WRIST_FRAME)
    g = ET.SubElement(robot, 'group', name=GRIPPER_GROUP)
    ET.SubElement(g, 'joint', name=GRIPPER_JOINT_NAME)
    s = ET.SubElement(robot, 'group_state', name='home', group=ARM_GROUP)
    for n, q in zip(ARM_JOINT_NAMES, home_joint_positions(urdf_text)):
        ET.SubElement(s, 'joint', name=n, value=_fmt(q))
    for state, q in (('open', GRIPPER_OPEN_POSITION_RAD), ('closed', GRIPPER_CLOSED_POSITION_RAD)):
        s = ET.SubElement(robot, 'group_state', name=state, group=GRIPPER_GROUP)
        ET.SubElement(s, 'joint', name=GRIPPER_JOINT_NAME, value=_fmt(q))
    ET.SubElement(robot, 'end_effector', name='robotiq_2f85', parent_link=T.WRIST_FRAME,
                  group=GRIPPER_GROUP, parent_group=ARM_GROUP)
    geometric = [l for l in model.links if l not in (T.WORLD_FRAME, T.FT_SENSOR_FRAME, T.PINCH_FRAME)
                 and not l.endswith('_optical_frame')]
    pairs = set()
    for j in model.joints.values():                      # adjacent links
        pairs.add(tuple(sorted((j.parent, j.child))) + ('Adjacent',))
    hand_stack = ['right_l5', 'right_l6', 'right_hand', 'fts300_body', GRIPPER_BASE_LINK, FINGER_LINK]
    for i, a in enumerate(hand_stack):                  # the rigid wrist stack touches by design
        for b in hand_stack[i + 1:]:
            pairs.add(tuple(sorted((a, b))) + ('Never',))
    for a in (ARM_BASE_LINK, 'right_l0', 'head', 'right_l1'):   # fixed to the ground, far from the basket
        pairs.add(tuple(sorted((a, BASKET_LINK))) + ('Never',))
    for a, b in (('head', 'right_l0'), ('head', 'right_l1'), (ARM_BASE_LINK, 'right_l1'),
                 (ARM_BASE_LINK, 'head'), ('right_l0', 'right_l2'), ('right_l1', 'right_l3')):
        pairs.add(tuple(sorted((a, b))) + ('Never',))
    for a, b, reason in sorted(pairs):
        if a in geometric and b in geometric:
            ET.SubElement(robot, 'disable_collisions', link1=a, link2=b, reason=reason)
    ET.indent(robot, space='  ')
    return '<?xml version="1.0"?>\n' + ET.tostring(robot, encoding='unicode') + '\n'


# --- files --------------------------------------------------------------------------------------
def default_config_dir() -> Path:
    from chef_contract.graph import default_config_dir as d
    return d()


def generated_files(config_dir: Path) -> Dict[Path, str]:
    from chef_real.cameras import load_cameras
    cams = load_cameras(config_dir / 'real' / 'cameras.yaml')
    poses = {n: c.base_from_optical for n, c in cams.items()}
    out = {}
    for hw in HARDWARE_VARIANTS:
        out[config_dir / 'real' / 'robot' / f'{ROBOT_NAME}.{hw}.urdf'] = build_urdf(hw, poses)
    out[config_dir / 'real' / 'robot' / f'{ROBOT_NAME}.srdf'] = build_srdf(build_urdf('mock', poses))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config-dir', type=Path, default=None, help='config/ directory (default: the repo)')
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument('--write', action='store_true', help='write the URDF and SRDF files')
    mode.add_argument('--check', action='store_true', help='exit 1 if the files are not up to date')
    args = p.parse_args(argv)
    files = generated_files(args.config_dir or default_config_dir())
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f'stale: {path} (run python -m chef_real.description --write)')
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
