"""Robot description: generated files are current, parse with the stdlib, carry the contract's joints
and frames, and their kinematics equal the benchmark's own MuJoCo model (dm_robotics Sawyer +
FTS-300 + 2F-85, the composition the sim uses)."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

from chef_contract import topics as T
from chef_contract.spec import ARM_JOINT_NAMES, CAMERA_NAMES, GRIPPER_JOINT_NAME
from chef_real import description as D
from chef_real.kinematics import RobotModel, solve_ik
from chef_real.transforms import pose_matrix
from chef_bringup.workspace import workspace_root

WS = workspace_root()
ROBOT = WS / 'config' / 'real' / 'robot'
URDFS = {hw: ROBOT / f'rgb_cell.{hw}.urdf' for hw in D.HARDWARE_VARIANTS}
SRDF = ROBOT / 'rgb_cell.srdf'
CONTRACT_JOINTS = list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME]


def test_generated_files_are_up_to_date():
    assert D.main(['--check', '--config-dir', str(WS / 'config')]) == 0, \
        'run: python -m chef_real.description --write'


@pytest.mark.parametrize('hw', D.HARDWARE_VARIANTS)
def test_urdf_parses_and_has_contract_joints_and_frames(hw):
    root = ET.parse(URDFS[hw]).getroot()          # stdlib parse
    assert root.tag == 'robot'
    model = RobotModel(URDFS[hw].read_text())
    assert model.root == T.WORLD_FRAME
    assert model.actuated_joints == CONTRACT_JOINTS
    for frame in (T.PINCH_FRAME, T.WRIST_FRAME, T.FT_SENSOR_FRAME) + tuple(T.camera_frame(c) for c in CAMERA_NAMES):
        model.chain(frame)                        # raises if missing
    for n in CONTRACT_JOINTS:
        j = model.joints[n]
        assert j.lower < j.upper and j.velocity > 0 and j.effort > 0
    # every ros2_control block names only contract joints with a position command interface
    blocks = root.findall('ros2_control')
    joints = [j.get('name') for b in blocks for j in b.findall('joint')]
    assert sorted(joints) == sorted(CONTRACT_JOINTS)
    for b in blocks:
        for j in b.findall('joint'):
            assert [c.get('name') for c in j.findall('command_interface')] == ['position']
    sensors = [s for b in blocks for s in b.findall('sensor')]
    assert [s.get('name') for s in sensors] == [T.FT_SENSOR_FRAME]
    assert {i.get('name') for i in sensors[0].findall('state_interface')} == {
        'force.x', 'force.y', 'force.z', 'torque.x', 'torque.y', 'torque.z'}


def test_variants_differ_only_in_ros2_control_and_placeholders_are_graph_arguments():
    def strip(text):
        root = ET.fromstring(text)
        for b in root.findall('ros2_control'):
            root.remove(b)
        return ET.tostring(root)
    real, mock = URDFS['real'].read_text(), URDFS['mock'].read_text()
    assert strip(real) == strip(mock)
    assert '$(' not in mock
    graph = yaml.safe_load((WS / 'config' / 'graphs' / 'real.yaml').read_text())
    placeholders = set(re.findall(r'\$\((\w+)\)', real))
    assert placeholders and placeholders <= set(graph['arguments'])
    assert 'mock_components/GenericSystem' in mock


@pytest.fixture(scope='module')
def mujoco_cell():
    from dm_control import mjcf
    from dm_robotics.moma.models.end_effectors.robot_hands import robotiq_2f85
    from dm_robotics.moma.models.end_effectors.wrist_sensors import robotiq_fts300
    from dm_robotics.moma.models.robots.robot_arms import sawyer
    arm, ft, hand = sawyer.Sawyer(with_pedestal=False), robotiq_fts300.RobotiqFTS300(), robotiq_2f85.Robotiq2F85()
    ft.attach(hand)
    arm.attach(ft)
    return arm, ft, hand, mjcf.Physics.from_mjcf_model(arm.mjcf_model)


def test_forward_kinematics_equals_the_benchmark_mujoco_model(mujoco_cell):
    arm, ft, hand, physics = mujoco_cell
    model = RobotModel(URDFS['real'].read_text())
    rng = np.random.default_rng(7)
    lo = np.array([model.joints[n].lower for n in ARM_JOINT_NAMES])
    hi = np.array([model.joints[n].upper for n in ARM_JOINT_NAMES])
    for _ in range(10):
        q = rng.uniform(lo, hi)
        physics.bind(arm.joints).qpos = q
        physics.forward()
        qd = dict(zip(ARM_JOINT_NAMES, q))
        for site, frame in ((arm.wrist_site, T.WRIST_FRAME), (hand.tool_center_point, T.PINCH_FRAME),
                            (ft.frame_site, T.FT_SENSOR_FRAME)):
            b = physics.bind(site)
            t = model.link_pose(frame, qd)
            np.testing.assert_allclose(t[:3, 3], b.xpos, atol=1e-5, err_msg=frame)
            np.testing.assert_allclose(t[:3, :3], b.xmat.reshape(3, 3), atol=1e-5, err_msg=frame)


def test_jacobian_matches_finite_differences_and_ik_reaches_targets():
    model = RobotModel(URDFS['mock'].read_text())
    home = dict(zip(ARM_JOINT_NAMES, D.home_joint_positions(URDFS['mock'].read_text())))
    jac = model.jacobian(T.WRIST_FRAME, home, ARM_JOINT_NAMES)
    eps = 1e-6
    for i, n in enumerate(ARM_JOINT_NAMES):
        q2 = dict(home, **{n: home[n] + eps})
        dp = (model.link_pose(T.WRIST_FRAME, q2)[:3, 3] - model.link_pose(T.WRIST_FRAME, home)[:3, 3]) / eps
        np.testing.assert_allclose(jac[:3, i], dp, atol=1e-5)
    tcp = model.link_pose(T.PINCH_FRAME, home)
    np.testing.assert_allclose(tcp[:3, 3], D.HOME_TCP_POSITION_M, atol=1e-3)
    assert tcp[2, 2] < -0.9999                     # pointing straight down
    target = pose_matrix((0.55, 0.08, 0.2), tcp[:3, :3])
    q = solve_ik(model, T.PINCH_FRAME, target, ARM_JOINT_NAMES, home)
    np.testing.assert_allclose(model.link_pose(T.PINCH_FRAME, q), target, atol=1e-5)


def test_srdf_groups_and_collision_pairs_refer_to_the_urdf():
    model = RobotModel(URDFS['mock'].read_text())
    root = ET.parse(SRDF).getroot()
    groups = {g.get('name'): g for g in root.findall('group')}
    chain = groups[D.ARM_GROUP].find('chain')
    assert (chain.get('base_link'), chain.get('tip_link')) == (T.WORLD_FRAME, T.WRIST_FRAME)
    assert [j.get('name') for j in groups[D.GRIPPER_GROUP].findall('joint')] == [GRIPPER_JOINT_NAME]
    arm_chain = [j.name for j in model.chain(T.WRIST_FRAME) if j.type != 'fixed']
    assert arm_chain == list(ARM_JOINT_NAMES)
    home = {j.get('name'): float(j.get('value')) for s in root.findall('group_state')
            if s.get('name') == 'home' for j in s.findall('joint')}
    assert list(home) == list(ARM_JOINT_NAMES)
    for n, v in home.items():
        assert model.joints[n].lower < v < model.joints[n].upper
    for d in root.findall('disable_collisions'):
        assert d.get('link1') in model.links and d.get('link2') in model.links
