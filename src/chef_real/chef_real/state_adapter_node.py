"""state_adapter: the per-tick contract topics a real cell's drivers do not publish.

In:  joint_states (joint_state_broadcaster), arm_position_controller/commands (MoveIt Servo's
     output), gripper_controller/commands (the safety filter's gripper target).
Out, at `rate_hz` (20 Hz = one control tick), stamped with the joint state they were computed from:
     tcp/pinch_pose, tcp/wrist_pose, tcp/wrist_twist, gripper/grasp_status, joint_command/applied.
     Published when a joint state arrives whose stamp is at least 0.9 periods after the last
     published one (every joint state of a 20 Hz stream, every 5th of joint_state_broadcaster's
     100 Hz), so every tick's stamp gets its derived topics; a free-running 20 Hz timer of its own
     aliased against the drivers' 20 Hz and skipped or repeated stamps (found on the MuJoCo
     emulator). The timer remains as a fallback that republishes the newest state when no joint
     state advanced the stamp for 1.5 periods.
The computation is chef_real.cell_state (URDF forward kinematics, grasp flag, applied command).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from rclpy.node import Node

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.params import declare_params
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, named_vector_msg, pose7_to_msg, spin_node,
    stamp_to_ns,
)
from chef_contract.spec import ARM_JOINT_NAMES, CONTROL_RATE_HZ, GRIPPER_JOINT_NAME
from chef_real.cell_state import CellStateEstimator, GraspDetectorConfig, is_new_tick


@dataclass
class Params:
    robot_description: str = field_('', help='URDF text of the cell (graph file_parameters)')
    rate_hz: float = field_(CONTROL_RATE_HZ, help='publish rate of the per-tick topics', min=1.0, max=1000.0)
    arm_command_timeout_s: float = field_(0.05, help='no Servo command for this long = zero applied '
                                                     'joint velocity (Servo halted or paused)', min=0.001)
    grasp_stall_velocity_rps: float = field_(0.05, help='finger slower than this counts as stopped', min=0.0)
    grasp_stall_samples: int = field_(3, help='stopped joint_states samples before the grasp flag rises', min=1)


class StateAdapter(Node):
    def __init__(self, **kwargs):
        super().__init__('state_adapter', **kwargs)
        self.p = declare_params(self, Params)
        if not self.p.robot_description.strip():
            raise ValueError('robot_description is empty: pass the cell URDF (config/graphs/real.yaml '
                             'does it with file_parameters)')
        self.state = CellStateEstimator(self.p.robot_description, GraspDetectorConfig(
            stall_velocity_rps=self.p.grasp_stall_velocity_rps, stall_samples=self.p.grasp_stall_samples))
        self._stamp_ns = None
        self._published_stamp_ns = None     # stamp of the last published set
        self._published_t = None            # monotonic time of the last publication
        self._last_cmd_t = None
        self.pubs = {name: create_contract_publisher(self, name) for name in T.DERIVED_STATE_TOPICS}
        create_contract_subscription(self, T.JOINT_STATES, self._on_joints)
        create_contract_subscription(self, T.ARM_POSITION_COMMAND, self._on_arm_command)
        create_contract_subscription(self, T.GRIPPER_CMD, self._on_gripper_command)
        self.create_timer(1.0 / self.p.rate_hz, self._tick)
        self._warned = False

    def _on_joints(self, msg):
        self.state.update_joints(msg.name, msg.position, msg.velocity)
        self._stamp_ns = stamp_to_ns(msg.header.stamp)
        if is_new_tick(self._stamp_ns, self._published_stamp_ns, self.p.rate_hz):
            self._publish()

    def _on_arm_command(self, msg):
        t = time.monotonic()
        try:
            self.state.update_arm_position_command(list(msg.data), t)
        except ValueError as exc:
            self.get_logger().error(f'{T.ARM_POSITION_COMMAND}: {exc}', throttle_duration_sec=5.0)
            return
        self._last_cmd_t = t

    def _on_gripper_command(self, msg):
        if len(msg.data) >= 1:
            self.state.update_gripper_command(float(msg.data[0]))

    def _tick(self):
        """Timer: the applied command's staleness, and the fallback publication."""
        self._check_command_stale()
        if self._published_t is None or time.monotonic() - self._published_t >= 1.5 / self.p.rate_hz:
            self._publish()

    def _check_command_stale(self):
        if self._last_cmd_t is not None and time.monotonic() - self._last_cmd_t > self.p.arm_command_timeout_s:
            self.state.command_went_stale()
            self._last_cmd_t = None

    def _publish(self):
        self._check_command_stale()
        if not self.state.ready or self._stamp_ns is None:
            if not self._warned:
                self.get_logger().info(f'waiting for {T.JOINT_STATES} with {list(ARM_JOINT_NAMES)}')
                self._warned = True
            return
        self._published_stamp_ns, self._published_t = self._stamp_ns, time.monotonic()
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from sensor_msgs.msg import JointState

        from chef_contract.ros import ns_to_stamp
        stamp = ns_to_stamp(self._stamp_ns)
        for topic, pose in ((T.PINCH_POSE, self.state.pinch_pose7()), (T.WRIST_POSE, self.state.wrist_pose7())):
            m = PoseStamped()
            m.header.stamp, m.header.frame_id = stamp, T.WORLD_FRAME
            m.pose = pose7_to_msg(pose)
            self.pubs[topic].publish(m)
        v = self.state.wrist_twist()
        tw = TwistStamped()
        tw.header.stamp, tw.header.frame_id = stamp, T.WORLD_FRAME
        tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = (float(x) for x in v[:3])
        tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z = (float(x) for x in v[3:])
        self.pubs[T.WRIST_TWIST].publish(tw)
        self.pubs[T.GRASP_STATUS].publish(named_vector_msg(
            ['grasp_status'], [float(self.state.grasp_status)], self._stamp_ns, T.WORLD_FRAME))
        cmd = self.state.applied_command()
        jc = JointState()
        jc.header.stamp, jc.header.frame_id = stamp, T.WORLD_FRAME
        jc.name = list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME]
        jc.position = [0.0] * len(ARM_JOINT_NAMES) + [float(cmd[7])]
        jc.velocity = [float(x) for x in cmd[:7]] + [0.0]
        self.pubs[T.JOINT_COMMAND_APPLIED].publish(jc)


NODE_PARAMS = {'state_adapter': Params}


def main(args=None):
    sys.exit(spin_node(StateAdapter, args=args))
