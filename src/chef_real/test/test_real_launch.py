"""launch_testing: real.launch.py as a dry run on ros2_control mock hardware.

Runs where ROS 2 Jazzy/Kilted with launch_testing, ros2_control, ros2_controllers and moveit_servo
is installed (`colcon test --packages-select chef_real`); skipped here, where `launch`,
`launch_ros` and `launch_testing` are not installable from PyPI (stack_recipe.md pitfall 25).
With hardware:=mock cameras:=false reset_mode:=none record:=false the graph must bring up
joint_states from the joint_state_broadcaster, the state adapter's per-tick topics, and MoveIt
Servo's command topic on the contract names, and keep every required process alive.
Its twin that runs here and cannot skip: test_real_cell_emulated.py (the same graph description with
hardware:=mujoco - chef_sim's emulator of the drivers and Servo instead of ros2_control mock hardware).
"""

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installable from PyPI; runs on a ROS 2 Jazzy/Kilted install')
pytest.importorskip('launch_ros', reason='launch_ros is not installable from PyPI; runs on a ROS 2 install')
pytest.importorskip('launch_testing_ros', reason='launch_testing_ros is not installable from PyPI')

import unittest  # noqa: E402

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402,F811
from launch_testing_ros import WaitForTopics  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from chef_bringup.launch_graph import generate_graph_launch_description  # noqa: E402
from chef_contract import topics as T  # noqa: E402

DRY_RUN = {'hardware': 'mock', 'cameras': 'false', 'reset_mode': 'none', 'record': 'false', 'cell': '5'}


@pytest.mark.launch_test
def generate_test_description():
    ld = generate_graph_launch_description('real')
    include = launch.actions.GroupAction([
        launch.actions.SetLaunchConfiguration(k, v) for k, v in DRY_RUN.items()] + list(ld.entities))
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestDryRun(unittest.TestCase):
    def test_contract_topics_come_up_on_mock_hardware(self):
        topics = [(f'/cell5/{T.JOINT_STATES}', JointState), (f'/cell5/{T.PINCH_POSE}', PoseStamped),
                  (f'/cell5/{T.WRIST_POSE}', PoseStamped), (f'/cell5/{T.JOINT_COMMAND_APPLIED}', JointState)]
        with WaitForTopics(topics, timeout=60.0) as wait:
            self.assertEqual(wait.topics_not_received(), set())

    def test_servo_and_gripper_controller_listen_on_the_safety_filter_topics(self):
        import time

        import rclpy
        rclpy.init()
        node = rclpy.create_node('launch_test_probe')
        try:
            deadline = time.monotonic() + 60.0
            want = (f'/cell5/{T.TWIST_CMD}', f'/cell5/{T.GRIPPER_CMD}')
            while time.monotonic() < deadline and not all(node.count_subscribers(t) for t in want):
                rclpy.spin_once(node, timeout_sec=0.5)
            for t in want:
                self.assertGreaterEqual(node.count_subscribers(t), 1, t)   # Servo, ros2_control gripper controller
        finally:
            node.destroy_node()
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_required_processes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
