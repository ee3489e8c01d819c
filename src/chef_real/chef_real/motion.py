"""How the episode manager moves the robot between episodes.

    NullMotion     executes nothing (reset_mode 'none': the operator or an external routine resets;
                   also what the tests here use)
    MoveItPyMotion MoveIt 2's Python API (moveit_py): home through the SRDF state 'home', Cartesian
                   pinch targets (pointing down, given yaw) through IK + OMPL, the gripper through its
                   forward command controller, and Servo/ros2_control hand-over around each episode.

MoveItPyMotion needs a ROS 2 Jazzy/Kilted install with moveit_py, controller_manager_msgs and
moveit_msgs (not installable from PyPI); it is imported only when reset_mode is 'moveit'.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, List, Optional

import numpy as np

from chef_contract import topics as T
from chef_contract.spec import GRIPPER_CLOSED_POSITION_RAD, GRIPPER_OPEN_POSITION_RAD
from chef_real.episode import MotionStep
from chef_real.transforms import axis_angle_matrix, matrix_to_quat, pose_matrix

ARM_SERVO_CONTROLLER = 'arm_position_controller'
ARM_TRAJECTORY_CONTROLLER = 'arm_trajectory_controller'
SERVO_COMMAND_TYPE_TWIST = 1            # moveit_msgs/srv/ServoCommandType: JOINT_JOG 0, TWIST 1, POSE 2


class MotionError(RuntimeError):
    """A reset motion failed (no plan, execution error, grasp missed)."""


class NullMotion:
    """Moves nothing; records the steps it was given (dry runs, tests, reset_mode 'none')."""

    def __init__(self):
        self.executed: List[MotionStep] = []
        self.servo_ready = False

    def execute(self, step: MotionStep) -> None:
        self.executed.append(step)

    def prepare_episode(self) -> None:
        self.servo_ready = True

    def end_episode(self) -> None:
        self.servo_ready = False

    def close(self) -> None:
        pass


def pinch_down_rotation(yaw_rad: float, heading_rad: float = 0.0) -> np.ndarray:
    """Gripper pointing straight down (tcp z = -z of base_link), turned by heading + yaw about z."""
    return axis_angle_matrix((0, 0, 1), heading_rad + yaw_rad) @ np.diag([1.0, -1.0, -1.0])


class MoveItPyMotion:
    """Real-robot motions through moveit_py. `node` is the episode manager (spinning in another
    thread); `finger` returns (finger_joint rad, rad/s) and `grasp_status` the latest grasp flag."""

    def __init__(self, node, config_dict: dict, hand_from_tcp: np.ndarray, heading_rad: float,
                 finger: Callable[[], Optional[tuple]], grasp_status: Callable[[], int],
                 arm_group: str = 'right_arm', wrist_link: str = T.WRIST_FRAME,
                 gripper_timeout_s: float = 2.0, service_timeout_s: float = 5.0):
        from moveit.planning import MoveItPy                           # noqa: F401 (real install)
        from std_msgs.msg import Float64MultiArray
        from std_srvs.srv import SetBool
        from controller_manager_msgs.srv import SwitchController
        from moveit_msgs.srv import ServoCommandType

        from chef_contract.ros import create_contract_publisher
        self.node = node
        self.moveit = MoveItPy(node_name=f'{node.get_name()}_moveit_py', config_dict=config_dict)
        self.arm = self.moveit.get_planning_component(arm_group)
        self.wrist_link = wrist_link
        self.tcp_in_hand_inv = np.linalg.inv(hand_from_tcp)
        self.heading = heading_rad
        self.finger, self.grasp_status = finger, grasp_status
        self.gripper_timeout_s, self.service_timeout_s = gripper_timeout_s, service_timeout_s
        self._Float64MultiArray = Float64MultiArray
        self.gripper_pub = create_contract_publisher(node, T.GRIPPER_CMD)
        self.switch = node.create_client(SwitchController, 'controller_manager/switch_controller')
        self.servo_pause = node.create_client(SetBool, 'servo_node/pause_servo')
        self.servo_type = node.create_client(ServoCommandType, 'servo_node/switch_command_type')
        self._SwitchController, self._SetBool, self._ServoCommandType = SwitchController, SetBool, ServoCommandType

    # --- helpers ------------------------------------------------------------------------------
    def _call(self, client, request, what: str):
        if not client.wait_for_service(timeout_sec=self.service_timeout_s):
            raise MotionError(f'{what}: service {client.srv_name} not available')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.service_timeout_s):
            raise MotionError(f'{what}: no answer within {self.service_timeout_s} s')
        return future.result()

    def _plan_and_execute(self, what: str):
        self.arm.set_start_state_to_current_state()
        result = self.arm.plan()
        if not result:
            raise MotionError(f'{what}: planning failed')
        status = self.moveit.execute(result.trajectory, controllers=[])
        if status is not None and hasattr(status, 'status') and str(status.status) not in ('SUCCEEDED', '1'):
            raise MotionError(f'{what}: execution {status.status}')

    def _gripper(self, closed: bool):
        target = GRIPPER_CLOSED_POSITION_RAD if closed else GRIPPER_OPEN_POSITION_RAD
        self.gripper_pub.publish(self._Float64MultiArray(data=[target]))
        t0 = time.monotonic()
        time.sleep(0.2)
        while time.monotonic() - t0 < self.gripper_timeout_s:
            f = self.finger()
            if f is not None and (abs(f[0] - target) < 0.02 or abs(f[1]) < 0.01):
                return
            time.sleep(0.05)

    # --- MotionBackend ------------------------------------------------------------------------
    def execute(self, step: MotionStep) -> None:
        from geometry_msgs.msg import PoseStamped
        if step.kind == 'home':
            self.arm.set_goal_state(configuration_name='home')
            self._plan_and_execute(step.note)
        elif step.kind == 'move':
            tcp = pose_matrix(step.position_m, pinch_down_rotation(step.yaw_rad, self.heading))
            hand = tcp @ self.tcp_in_hand_inv
            q = matrix_to_quat(hand[:3, :3])
            goal = PoseStamped()
            goal.header.frame_id = T.WORLD_FRAME
            goal.pose.position.x, goal.pose.position.y, goal.pose.position.z = (float(v) for v in hand[:3, 3])
            goal.pose.orientation.w, goal.pose.orientation.x, goal.pose.orientation.y, goal.pose.orientation.z = (
                float(v) for v in q)
            self.arm.set_goal_state(pose_stamped_msg=goal, pose_link=self.wrist_link)
            self._plan_and_execute(step.note)
        elif step.kind == 'gripper':
            self._gripper(step.closed)
        elif step.kind == 'check_grasp':
            from chef_contract.spec import GRASP_INWARD
            if self.grasp_status() != GRASP_INWARD:
                raise MotionError(f'{step.note}: no object between the fingers')
        else:
            raise MotionError(f'unknown motion step {step.kind!r}')

    def prepare_episode(self) -> None:
        req = self._SwitchController.Request()
        req.activate_controllers = [ARM_SERVO_CONTROLLER]
        req.deactivate_controllers = [ARM_TRAJECTORY_CONTROLLER]
        req.strictness = self._SwitchController.Request.BEST_EFFORT
        req.activate_asap = True
        res = self._call(self.switch, req, 'switch to the Servo controller')
        if not res.ok:
            raise MotionError('controller_manager refused to activate arm_position_controller')
        res = self._call(self.servo_type, self._ServoCommandType.Request(command_type=SERVO_COMMAND_TYPE_TWIST),
                         'Servo command type TWIST')
        res = self._call(self.servo_pause, self._SetBool.Request(data=False), 'unpause Servo')
        if not res.success:
            raise MotionError(f'Servo did not unpause: {res.message}')

    def end_episode(self) -> None:
        self._call(self.servo_pause, self._SetBool.Request(data=True), 'pause Servo')

    def close(self) -> None:
        try:
            self.moveit.shutdown()
        except Exception:  # noqa: BLE001
            pass


def hand_from_tcp(model) -> np.ndarray:
    """Fixed transform right_hand -> tcp of a chef_real.kinematics.RobotModel."""
    return model.link_pose(T.PINCH_FRAME, {}, base=T.WRIST_FRAME)


def home_heading(model, home_q) -> float:
    """Heading (rad) of the tcp x axis at the home posture, the zero of reset yaws."""
    x = model.link_pose(T.PINCH_FRAME, home_q)[:3, 0]
    return math.atan2(x[1], x[0])
