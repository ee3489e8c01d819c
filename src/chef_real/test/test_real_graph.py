"""Static checks of the real cell where ros2_control, MoveIt and the drivers cannot be installed:
every config parses, joint names agree across URDF, controllers, Servo and MoveIt configs and the
contract, every remapped or configured topic is a contract topic, Servo listens exactly where the
safety filter publishes, and the camera calibrations reproduce the benchmark's cameras."""

import math

import numpy as np
import pytest
import yaml

from chef_bringup.workspace import workspace_root
from chef_contract import topics as T
from chef_contract.graph import load_graph
from chef_contract.spec import ARM_COMMAND_TIMEOUT_S, ARM_JOINT_NAMES, CAMERA_NAMES, CAMERAS, GRIPPER_JOINT_NAME
from chef_policy.safety import load_limits
from chef_real import description as D
from chef_real.cameras import load_cameras
from chef_real.kinematics import RobotModel

WS = workspace_root()
CFG = WS / 'config'
GRAPH = load_graph(CFG / 'graphs' / 'real.yaml')
ARGSETS = [{}, {'hardware': 'mock', 'cameras': False, 'reset_mode': 'none', 'record': False}, {'cell': 3},
           {'hardware': 'mujoco', 'reset_mode': 'service'}]


def params(path, node):
    """ros__parameters of `node` in a ROS params file (sections '/**/<node>' or '/**')."""
    data = yaml.safe_load(path.read_text())
    out = {}
    for key, section in data.items():
        if key in ('/**', f'/**/{node}', node):
            out.update(section['ros__parameters'])
    return out


def spec(name, values=None):
    return next(s for s in GRAPH.resolve(values or {}) if s.name == name)


@pytest.mark.parametrize('values', ARGSETS)
def test_every_node_in_the_cell_namespace_and_every_param_file_parses(values):
    specs = GRAPH.resolve(values)
    ns = f'cell{values.get("cell", 0)}'
    assert {s.namespace for s in specs} == {ns}
    for s in specs:
        for f in s.parameter_files:
            assert isinstance(yaml.safe_load(open(f)), dict), f
        for name, text in s.file_parameters.items():
            assert '$(' not in text, f'{s.fqn}: unsubstituted argument in {name}'
    names = {s.name for s in specs}
    if values.get('cameras', True) is False:
        assert not any(n.endswith('_driver') for n in names) and 'camera_adapter' not in names


@pytest.mark.parametrize('values', ARGSETS)
def test_every_remapped_topic_is_a_contract_topic(values):
    for s in GRAPH.resolve(values):
        for src, dst in s.remappings:
            assert T.is_contract_topic(dst), f'{s.fqn}: remaps {src} -> {dst}, not a contract topic'
            assert not dst.startswith('/'), f'{s.fqn}: {dst} escapes the cell namespace'


def test_joint_names_agree_across_urdf_controllers_servo_moveit_and_contract():
    model = RobotModel(spec('robot_state_publisher').file_parameters['robot_description'])
    assert model.actuated_joints == list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME]
    ctl = CFG / 'real' / 'controllers.yaml'
    assert params(ctl, 'arm_position_controller')['joints'] == list(ARM_JOINT_NAMES)
    assert params(ctl, 'arm_trajectory_controller')['joints'] == list(ARM_JOINT_NAMES)
    assert params(ctl, 'gripper_controller')['joints'] == [GRIPPER_JOINT_NAME]
    assert params(ctl, 'gripper_controller')['interface_name'] == 'position'
    assert params(ctl, 'ft_sensor_broadcaster')['sensor_name'] == T.FT_SENSOR_FRAME
    assert params(ctl, 'ft_sensor_broadcaster')['frame_id'] == T.FT_SENSOR_FRAME
    limits = params(CFG / 'real' / 'moveit' / 'joint_limits.yaml', 'x')['robot_description_planning']['joint_limits']
    assert list(limits) == list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME]
    for n in ARM_JOINT_NAMES:
        assert math.isclose(limits[n]['max_velocity'], model.joints[n].velocity)
    mp = yaml.safe_load((CFG / 'real' / 'moveit' / 'moveit_py.yaml').read_text())
    assert mp['moveit_simple_controller_manager']['arm_trajectory_controller']['joints'] == list(ARM_JOINT_NAMES)
    kin = params(CFG / 'real' / 'moveit' / 'kinematics.yaml', 'x')['robot_description_kinematics']
    assert list(kin) == [D.ARM_GROUP]
    servo = params(CFG / 'real' / 'servo.yaml', 'servo_node')['moveit_servo']
    assert servo['move_group_name'] == D.ARM_GROUP
    assert len(servo['joint_limit_margins']) == len(ARM_JOINT_NAMES)


def test_spawned_controllers_exist_with_types():
    cm = params(CFG / 'real' / 'controllers.yaml', 'controller_manager')
    spawned = [s.arguments[0] for s in GRAPH.resolve({}) if s.executable == 'spawner']
    assert sorted(spawned) == sorted(k for k, v in cm.items() if isinstance(v, dict) and 'type' in v)
    assert cm['arm_position_controller']['type'] == 'position_controllers/JointGroupPositionController'
    assert cm['gripper_controller']['type'] == 'forward_command_controller/ForwardCommandController'
    assert 'trajectory' not in cm['arm_position_controller']['type'].lower()   # Servo output: a group controller


def test_servo_listens_where_the_safety_filter_publishes_and_drives_the_group_controller():
    s = spec('servo_node')
    assert s.name == 'servo_node' and s.package == 'moveit_servo'
    servo = params(CFG / 'real' / 'servo.yaml', 'servo_node')['moveit_servo']
    # ~/delta_twist_cmds of node servo_node in the cell namespace == the contract's TWIST_CMD
    assert servo['cartesian_command_in_topic'].replace('~', s.name) == T.TWIST_CMD
    assert servo['command_out_topic'] == T.ARM_POSITION_COMMAND == 'arm_position_controller/commands'
    assert servo['joint_topic'] == T.JOINT_STATES
    assert servo['command_out_type'] == 'std_msgs/Float64MultiArray'
    assert servo['publish_joint_positions'] and not servo['publish_joint_velocities']
    assert servo['incoming_command_timeout'] == pytest.approx(ARM_COMMAND_TIMEOUT_S)
    # the safety filter's own zero twists (the limits every safety_filter loads) come before Servo halts
    assert load_limits().command_timeout_s < servo['incoming_command_timeout']
    assert servo['check_collisions'] is True and servo['command_in_type'] == 'speed_units'
    assert servo['scale']['linear'] >= 0.07 and servo['scale']['rotational'] >= 1.0
    # the gripper forward controller listens on <controller>/commands = the contract's GRIPPER_CMD
    assert 'gripper_controller/commands' == T.GRIPPER_CMD
    assert set(s.file_parameters) == {'robot_description', 'robot_description_semantic'}


def test_camera_calibrations_reproduce_the_benchmark_cameras():
    cams = load_cameras(CFG / 'real' / 'cameras.yaml')
    assert sorted(cams) == sorted(CAMERA_NAMES)
    model = RobotModel(spec('robot_state_publisher').file_parameters['robot_description'])
    for name, cal in cams.items():
        ref = CAMERAS[name]
        np.testing.assert_allclose(cal.position_m, ref.position_m, atol=1e-3)
        np.testing.assert_allclose(cal.optical_axis, ref.optical_axis, atol=2e-3)
        assert abs(cal.fovy_deg - ref.fovy_deg) < 0.1, (name, cal.fovy_deg)
        assert cal.output_size_px == 128
        assert abs(cal.output_k[1, 1] - ref.focal_length_px(128)) < 0.5
        np.testing.assert_allclose(model.link_pose(T.camera_frame(name), {}), cal.base_from_optical, atol=1e-6)
        # the driver is pointed at the same calibration file
        drv = spec(f'{name}_driver')
        assert drv.parameters['camera_info_url'] == 'file://' + str(CFG.resolve() / 'real' / 'cameras' / f'{name}.yaml')
        assert drv.parameters['camera_frame'] == T.camera_frame(name)
        assert ('~/image_raw', T.camera_driver_image_topic(name)) in drv.remappings


def test_policy_acts_only_in_episodes_and_recorder_skips_plumbing():
    pol = spec('policy')
    assert pol.parameters['act_without_episode'] is False and pol.parameters['timing'] == 'tick'
    from chef_recorder.recorder_node import Params, selected_topics
    recorded = selected_topics(Params())
    assert not any(T.topic(n).real_only for n in recorded)
    assert set(T.PER_TICK_TOPICS) <= set(recorded)


def test_hardware_mujoco_swaps_only_the_drivers_and_servo_for_the_emulator():
    """hardware:=mujoco: ros2_control, MoveIt Servo, robot_state_publisher and the camera drivers give
    way to chef_sim's emulator (servo_emulator under Servo's own node name, so the safety filter's
    topic is its ~/delta_twist_cmds); every node above the drivers is the same, with the same
    parameters; the emulator reads the calibration files the drivers serve."""
    from chef_sim.hardware_emulator_node import ServoParams
    real = {s.name: s for s in GRAPH.resolve({})}
    emu = {s.name: s for s in GRAPH.resolve({'hardware': 'mujoco', 'reset_mode': 'service'})}
    drivers = {'robot_state_publisher', 'controller_manager', 'basket_front_left_driver',
               'basket_front_right_driver', 'basket_back_left_driver'} | {n for n in real if n.startswith('spawner_')}
    assert set(real) - set(emu) == drivers
    assert set(emu) - set(real) == {'hardware_emulator'}
    assert (real['servo_node'].package, emu['servo_node'].package) == ('moveit_servo', 'chef_sim')
    assert emu['servo_node'].executable == 'servo_emulator' and ServoParams().incoming_command_timeout_s == ARM_COMMAND_TIMEOUT_S
    for name in ('camera_adapter', 'pixel_reward', 'safety_filter', 'policy', 'recorder'):
        assert (emu[name].executable, emu[name].parameter_files, emu[name].parameters, emu[name].remappings) == \
            (real[name].executable, real[name].parameter_files, real[name].parameters, real[name].remappings), name
    cal_dir = emu['hardware_emulator'].parameters['calibration_dir']
    for c in CAMERA_NAMES:
        url = real[f'{c}_driver'].parameters['camera_info_url']
        assert url == f'file://{cal_dir}/{c}.yaml'
