"""hardware_emulator and servo_emulator: the real cell's drivers and MoveIt Servo, emulated in MuJoCo.

`chef run real hardware:=mujoco` (config/graphs/real.yaml) starts these in place of ros2_control,
MoveIt Servo and the camera drivers; every node above them is the real cell's, unchanged. Core:
chef_sim.hardware_emulator (ROS-free).

hardware_emulator (one per cell, wall clock at `rate_hz`):
  In:  arm_position_controller/commands (std_msgs/Float64MultiArray, 7 joint positions, rad: the
       position group controller MoveIt Servo writes), gripper_controller/commands
       (Float64MultiArray [finger_joint rad]: the gripper forward controller).
  Out: joint_states (sensor_msgs/JointState as joint_state_broadcaster: right_j0..6 + finger_joint,
       position/velocity/effort), wrist/wrench (geometry_msgs/WrenchStamped, frame ft_sensor: the
       remapped ft_sensor_broadcaster), camera/<c>/driver/{image_raw, camera_info} (the Basler
       driver's topics: the calibration's full frame, binned by `camera_binning`; camera_info carries
       the calibration file's intrinsics at full resolution with binning_x/y, as ROS defines it),
       emulator/ground_truth (named vector: the sim's reward terms with the contact-based
       sparse_success, `resets` and the current `layout_seed`; for tests, never an input of the real graph),
       tracker/object_poses (PoseArray: the objects' true poses, as an external tracker would give
       them; read only by a policy remapped onto it, graph argument policy_object_poses).
  Service: cell_reset (std_srvs/Trigger): the cell's reset routine (robot + objects re-drawn from
       the benchmark's initial-state distribution, layout seed = the parameter `seed`, then seed + 1
       at the next reset); the episode manager's reset_mode 'service' calls it, after setting `seed`
       to the episode's seed (its reset_seed_node). A real cell answers the same service with its
       own routine.

servo_emulator (node name servo_node, as moveit_servo's):
  In:  servo_node/delta_twist_cmds (geometry_msgs/TwistStamped, base_link, wrist), joint_states.
  Out: arm_position_controller/commands every `publish_period_s`; ~/status (std_msgs/Int8, moveit_servo
       StatusCode values). Halts after `incoming_command_timeout_s` without a command (spec.
       ARM_COMMAND_TIMEOUT_S, MoveIt Servo's incoming_command_timeout). Service ~/pause_servo
       (std_srvs/SetBool) as moveit_servo's.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import List

import numpy as np
from rclpy.node import Node

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.params import declare_params
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, image_to_msg, named_vector_msg, ns_to_stamp,
    spin_node,
)
from chef_contract.spec import (
    ARM_COMMAND_TIMEOUT_S, ARM_JOINT_NAMES, CAMERA_NAMES, CONTROL_RATE_HZ, REWARD_TERMS,
)

GROUND_TRUTH_TOPIC = 'emulator/ground_truth'
RESET_SERVICE = 'cell_reset'
SERVO_STATUS_TOPIC = '~/status'


@dataclass
class EmulatorParams:
    triplet: str = field_('rgb_test_triplet1', help='the triplet in the emulated cell')
    preset: str = field_('fast', choices=('faithful', 'fast'), help='chef_sim physics preset')
    seed: int = field_(0, help='seed of the next layout (the first at start); each reset draws it, then '
                               "seed + 1; the episode manager sets it to the episode's seed before each "
                               'reset (its reset_seed_node)', min=0)
    rate_hz: float = field_(CONTROL_RATE_HZ, help='physics ticks (one control period each) per wall '
                                                  'second', min=1.0, max=200.0)
    render_cameras: bool = field_(True, help='emulate the camera drivers (the graph argument cameras)')
    cameras: List[str] = field_(default_factory=lambda: list(CAMERA_NAMES), help='cameras to emulate')
    calibration_dir: str = field_('', help='directory of <camera>.yaml driver calibrations '
                                           '(camera_info_manager format; config/real/cameras)')
    camera_binning: int = field_(4, help='driver binning: images are calibration size / binning', min=1, max=16)


class HardwareEmulator(Node):
    def __init__(self, **kwargs):
        super().__init__('hardware_emulator', **kwargs)
        self.p = declare_params(self, EmulatorParams)
        self.add_post_set_parameters_callback(self._on_params_set)
        from chef_sim.env import RgbStackingEnv, SimConfig
        from chef_sim.hardware_emulator import EmulatedCell, read_driver_calibration
        cams = []
        if self.p.render_cameras and self.p.cameras:
            if not self.p.calibration_dir:
                raise ValueError('calibration_dir is not set (config/real/cameras)')
            cams = [read_driver_calibration(os.path.join(self.p.calibration_dir, f'{c}.yaml'), c,
                                            self.p.camera_binning) for c in self.p.cameras]
        size = max([max(c.image_size_px) for c in cams] + [128])
        env = RgbStackingEnv(SimConfig(preset=self.p.preset, triplet=self.p.triplet, render_images=False,
                                       image_size=min(size, 1024), episode_steps=10**9))
        self.cell = EmulatedCell(env, cams)
        self._next_seed = self.p.seed
        self._reset()
        self.pubs = {n: create_contract_publisher(self, n) for n in (T.JOINT_STATES, T.WRENCH)}
        self.tracker_pub = create_contract_publisher(self, T.TRACKER_OBJECT_POSES)
        self.image_pubs = {c.name: create_contract_publisher(self, T.camera_driver_image_topic(c.name))
                           for c in cams}
        self.info_pubs = {c.name: create_contract_publisher(self, T.camera_driver_info_topic(c.name))
                          for c in cams}
        from sensor_msgs.msg import JointState
        self.truth_pub = self.create_publisher(JointState, GROUND_TRUTH_TOPIC, 10)
        create_contract_subscription(self, T.ARM_POSITION_COMMAND, self._on_arm)
        create_contract_subscription(self, T.GRIPPER_CMD, self._on_gripper)
        from std_srvs.srv import Trigger
        self.create_service(Trigger, RESET_SERVICE, self._srv_reset)
        self.ticks = 0
        self._grid_ns = None
        self.create_timer(1.0 / self.p.rate_hz, self._tick)
        self.get_logger().info(f'emulating {self.p.triplet} ({self.p.preset}), cameras '
                               + ', '.join(f'{c.name} {c.image_size_px[0]}x{c.image_size_px[1]}' for c in cams))

    def _on_params_set(self, params) -> None:
        """`seed` set (validated; the same value again counts too): the next reset draws that layout."""
        if any(p.name == 'seed' for p in params):
            self._next_seed = self.p.seed

    def _reset(self) -> int:
        seed = self._next_seed
        self._next_seed += 1
        self.cell.reset_objects(seed)
        self._layout_seed = seed
        return seed

    def _on_arm(self, msg):
        try:
            self.cell.command_arm_positions(list(msg.data))
        except ValueError as exc:
            self.get_logger().error(f'{T.ARM_POSITION_COMMAND}: {exc}', throttle_duration_sec=5.0)

    def _on_gripper(self, msg):
        if len(msg.data) != 1:
            self.get_logger().error(f'{T.GRIPPER_CMD}: expected 1 value, got {len(msg.data)}',
                                    throttle_duration_sec=5.0)
            return
        try:
            self.cell.command_finger(float(msg.data[0]))
        except ValueError as exc:
            self.get_logger().error(f'{T.GRIPPER_CMD}: {exc}', throttle_duration_sec=5.0)

    def _srv_reset(self, req, res):
        t0 = time.monotonic()
        seed = self._reset()
        res.success = True
        res.message = f'layout seed {seed}, objects {list(self.cell.env.objects)}, {time.monotonic() - t0:.2f} s'
        self.get_logger().info(f'cell reset: {res.message}')
        return res

    def _stamp_ns(self) -> int:
        """The tick's stamp on a regular grid (as hardware-triggered drivers stamp), re-anchored on
        the wall clock when a tick came more than a period late (a dropped frame, not a drifting clock)."""
        now = self.get_clock().now().nanoseconds
        period = int(1e9 / self.p.rate_hz)
        if self._grid_ns is None or not 0 <= now - (self._grid_ns + period) < period:
            self._grid_ns = now
        else:
            self._grid_ns += period
        return self._grid_ns

    def _tick(self):
        self.cell.step()
        self.ticks += 1
        stamp_ns = self._stamp_ns()
        from chef_contract.frames import frame_to_messages
        msgs = frame_to_messages(self.cell.frame, stamp_ns, cameras=(), include_objects=True)
        for name, pub in self.pubs.items():
            pub.publish(msgs[name])
        self.tracker_pub.publish(msgs[T.OBJECT_POSES])          # true poses, as a tracker would give them
        for cam in self.image_pubs:
            self.image_pubs[cam].publish(image_to_msg(self.cell.render(cam), stamp_ns, T.camera_frame(cam)))
            self.info_pubs[cam].publish(self._camera_info(cam, stamp_ns))
        names = list(REWARD_TERMS) + ['resets', 'layout_seed']
        values = [float(self.cell.terms[k]) for k in REWARD_TERMS] + [float(self.cell.resets),
                                                                       float(self._layout_seed)]
        self.truth_pub.publish(named_vector_msg(names, values, stamp_ns, T.WORLD_FRAME))

    def _camera_info(self, cam: str, stamp_ns: int):
        from sensor_msgs.msg import CameraInfo
        c = self.cell.cameras[cam]
        m = CameraInfo()
        m.header.stamp, m.header.frame_id = ns_to_stamp(stamp_ns), T.camera_frame(cam)
        m.width, m.height = c.size_px
        m.binning_x = m.binning_y = c.binning
        m.distortion_model = 'plumb_bob'
        m.d = [0.0] * 5
        m.k = [float(v) for v in c.k.reshape(-1)]
        m.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        m.p = [float(v) for v in np.c_[c.k, np.zeros(3)].reshape(-1)]
        return m

    def close(self):
        self.cell.env.close()


@dataclass
class ServoParams:
    publish_period_s: float = field_(0.01, help="output period (s); moveit_servo's publish_period",
                                     min=0.001, max=0.05)
    incoming_command_timeout_s: float = field_(ARM_COMMAND_TIMEOUT_S, help='halt when no twist arrived '
                                               "for this long (s); moveit_servo's incoming_command_timeout",
                                               min=0.001)


class ServoEmulator(Node):
    def __init__(self, **kwargs):
        super().__init__('servo_node', **kwargs)
        self.p = declare_params(self, ServoParams)
        from std_msgs.msg import Int8
        from std_srvs.srv import SetBool

        from chef_sim.hardware_emulator import ServoStage
        self.stage = ServoStage(self.p.publish_period_s, self.p.incoming_command_timeout_s)
        self._q = None
        self.cmd_pub = create_contract_publisher(self, T.ARM_POSITION_COMMAND)
        self.status_pub = self.create_publisher(Int8, SERVO_STATUS_TOPIC, 10)
        self._last_status = None
        create_contract_subscription(self, T.TWIST_CMD, self._on_twist)
        create_contract_subscription(self, T.JOINT_STATES, self._on_joints)
        self.create_service(SetBool, '~/pause_servo', self._srv_pause)
        self.create_timer(self.p.publish_period_s, self._tick)

    def _on_twist(self, msg):
        t = msg.twist
        self.stage.command([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z],
                           time.monotonic(), msg.header.frame_id)

    def _on_joints(self, msg):
        pos = dict(zip(msg.name, msg.position))
        if all(n in pos for n in ARM_JOINT_NAMES):
            self._q = [float(pos[n]) for n in ARM_JOINT_NAMES]

    def _srv_pause(self, req, res):
        self.stage.paused = bool(req.data)
        res.success, res.message = True, 'paused' if req.data else 'running'
        return res

    def _tick(self):
        from std_msgs.msg import Float64MultiArray, Int8
        if self._q is None:
            return
        q = self.stage.update(self._q, time.monotonic())
        if q is not None:
            self.cmd_pub.publish(Float64MultiArray(data=[float(v) for v in q]))
        if q is not None or self.stage.status != self._last_status:
            self.status_pub.publish(Int8(data=int(self.stage.status)))
            self._last_status = self.stage.status


NODE_PARAMS = {'hardware_emulator': EmulatorParams, 'servo_node': ServoParams}


def main_hardware(args=None):
    sys.exit(spin_node(HardwareEmulator, args=args))


def main_servo(args=None):
    sys.exit(spin_node(ServoEmulator, args=args))
