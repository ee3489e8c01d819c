"""The real-cell nodes over real rclpy + Fast DDS: state_adapter, camera_adapter and pixel_reward
in-process (own context and domain), episode_manager as its installed executable."""

import json
import subprocess
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from chef_bringup.workspace import workspace_root
from chef_contract import events as E
from chef_contract import topics as T
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, image_to_msg, msg_to_image, msg_to_pose7,
    named_vector_msg, named_vector_values, ns_to_stamp, pose7_to_msg,
)
from chef_contract.spec import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME, POLICY_CAMERAS, REWARD_TERMS
from chef_contract.testing import LocalGraph, executable, ros_env, unique_domain_id
from chef_real.cameras import CameraRectifier, load_cameras
from chef_real.description import home_joint_positions

from scenes import render

CFG = workspace_root() / 'config' / 'real'
URDF = (CFG / 'robot' / 'rgb_cell.mock.urdf').read_text()
HOME = home_joint_positions(URDF)


@pytest.fixture
def ros():
    g = LocalGraph()
    yield g.ctx, g.add, g.spin_until
    g.close()


class Probe(Node):
    def __init__(self, ctx, listen):
        super().__init__('probe', context=ctx)
        self.got = {t: [] for t in listen}
        for t in listen:
            create_contract_subscription(self, t, lambda m, t=t: self.got[t].append(m))
        self.pubs = {}

    def pub(self, topic, msg):
        if topic not in self.pubs:
            self.pubs[topic] = create_contract_publisher(self, topic)
        self.pubs[topic].publish(msg)


def joint_state(q, qd=None, finger=0.0, stamp_ns=1):
    from sensor_msgs.msg import JointState
    m = JointState()
    m.header.stamp = ns_to_stamp(stamp_ns)
    m.name = list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME]
    m.position = [float(v) for v in q] + [finger]
    m.velocity = [float(v) for v in (qd if qd is not None else np.zeros(7))] + [0.0]
    m.effort = [0.0] * 8
    return m


def test_state_adapter_publishes_fk_poses_grasp_and_applied_command(ros):
    from std_msgs.msg import Float64MultiArray
    from chef_real.state_adapter_node import StateAdapter
    ctx, add, spin_until = ros
    add(StateAdapter(context=ctx, parameter_overrides=[Parameter('robot_description', value=URDF)]))
    outs = list(T.DERIVED_STATE_TOPICS)
    probe = add(Probe(ctx, outs))
    for i in range(40):                      # Servo streaming position targets at 100 Hz
        probe.pub(T.JOINT_STATES, joint_state(HOME, stamp_ns=1_000_000 + i))
        probe.pub(T.ARM_POSITION_COMMAND, Float64MultiArray(data=[q + 0.0005 * i for q in HOME]))
        probe.pub(T.GRIPPER_CMD, Float64MultiArray(data=[0.8]))
        spin_until(lambda: False, 0.01)
    assert spin_until(lambda: all(probe.got[t] for t in outs))
    pinch = msg_to_pose7(probe.got[T.PINCH_POSE][-1].pose)
    np.testing.assert_allclose(pinch[:3], (0.6, 0.0, 0.3), atol=1e-3)
    assert probe.got[T.PINCH_POSE][-1].header.frame_id == T.WORLD_FRAME
    applied = [m for m in probe.got[T.JOINT_COMMAND_APPLIED] if m.velocity[0] > 0]
    assert applied, 'no applied velocity seen'
    assert 0.002 < applied[-1].velocity[0] < 0.5          # 0.0005 rad per 1..200 ms (receive times)
    assert applied[-1].position[-1] == 255.0 and list(applied[-1].name)[-1] == GRIPPER_JOINT_NAME
    assert named_vector_values(probe.got[T.GRASP_STATUS][-1]) == {'grasp_status': 1.0}


def test_camera_adapter_rectifies_driver_images_onto_the_contract(ros, tmp_path):
    from chef_real.camera_adapter_node import CameraAdapter
    ctx, add, spin_until = ros
    # a 320x200 driver with distortion, cropped to the benchmark's 35 deg
    (tmp_path / 'drv.yaml').write_text(
        'image_width: 320\nimage_height: 200\ncamera_name: basket_front_left\n'
        'camera_matrix: {rows: 3, cols: 3, data: [240.0, 0, 160.0, 0, 240.0, 100.0, 0, 0, 1]}\n'
        'distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [-0.1, 0.01, 0, 0, 0]}\n')
    (tmp_path / 'cams.yaml').write_text(
        'output_size_px: 32\ncameras:\n  basket_front_left: {driver_calibration: drv.yaml, '
        'crop_px: [84, 24, 151, 151], position_m: [0.97, -0.375, 0.285], quaternion_wxyz: [1, 0, 0, 0]}\n')
    add(CameraAdapter(context=ctx, parameter_overrides=[
        Parameter('cameras_file', value=str(tmp_path / 'cams.yaml')), Parameter('cameras', value=['basket_front_left'])]))
    cam = 'basket_front_left'
    probe = add(Probe(ctx, [T.image_topic(cam), T.camera_info_topic(cam)]))
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 320, 3), dtype=np.uint8)
    assert spin_until(lambda: probe.count_publishers(T.camera_driver_image_topic(cam)) >= 0, 1)
    for i in range(20):
        probe.pub(T.camera_driver_image_topic(cam), image_to_msg(img, 5_000_000 + i, 'x'))
        if spin_until(lambda: probe.got[T.image_topic(cam)] and probe.got[T.camera_info_topic(cam)], 0.2):
            break
    out = probe.got[T.image_topic(cam)][-1]
    cal = load_cameras(tmp_path / 'cams.yaml')[cam]
    assert (out.width, out.height, out.encoding, out.header.frame_id) == (32, 32, 'rgb8', T.camera_frame(cam))
    np.testing.assert_array_equal(msg_to_image(out), CameraRectifier(cal)(img))
    info = probe.got[T.camera_info_topic(cam)][-1]
    np.testing.assert_allclose(np.array(info.k).reshape(3, 3), cal.output_k)
    assert list(info.d) == [0.0] * 5


def test_pixel_reward_node_estimates_objects_and_publishes_all_terms(ros):
    from geometry_msgs.msg import PoseStamped
    from chef_real.pixel_reward_node import PixelRewardNode
    ctx, add, spin_until = ros
    add(PixelRewardNode(context=ctx, parameter_overrides=[Parameter('cameras_file', value=str(CFG / 'cameras.yaml'))]))
    probe = add(Probe(ctx, [T.OBJECT_POSES, T.REWARD_TERMS]))
    cams = load_cameras(CFG / 'cameras.yaml')
    # a 40 mm red cube resting on a 50 mm blue one: centres 45 mm apart (stack needs 40 +- 10 mm)
    truth = {'red': np.array([0.6, 0.0, 0.1198]), 'green': np.array([0.68, -0.08, 0.0748]),
             'blue': np.array([0.6, 0.0, 0.0748])}
    half = {'red': 0.02, 'green': 0.025, 'blue': 0.025}
    images = render({c: cams[c] for c in POLICY_CAMERAS}, {k: (v, half[k]) for k, v in truth.items()})
    pinch = PoseStamped()
    pinch.pose = pose7_to_msg([0.6, 0.0, 0.30, 0, 1, 0, 0])
    for i in range(30):
        stamp = 10_000_000 + i * 50_000_000
        probe.pub(T.PINCH_POSE, pinch)
        probe.pub(T.JOINT_STATES, joint_state(HOME, finger=0.0))
        probe.pub(T.GRASP_STATUS, named_vector_msg(['grasp_status'], [1.0], stamp))
        for c in POLICY_CAMERAS:
            probe.pub(T.image_topic(c), image_to_msg(images[c], stamp, T.camera_frame(c)))
        if spin_until(lambda: len(probe.got[T.REWARD_TERMS]) >= 2, 0.1):
            break
    assert probe.got[T.REWARD_TERMS], 'no reward/terms'
    terms = named_vector_values(probe.got[T.REWARD_TERMS][-1])
    assert list(terms) == list(REWARD_TERMS)
    assert terms['stack'] == 1.0 and terms['sparse_success'] == 1.0      # red resting on blue, gripper away
    poses = probe.got[T.OBJECT_POSES][-1]
    assert poses.header.frame_id == T.WORLD_FRAME and len(poses.poses) == 3
    assert poses.header.stamp == probe.got[T.REWARD_TERMS][-1].header.stamp
    for colour, p in zip(('red', 'green', 'blue'), poses.poses):
        assert np.linalg.norm(msg_to_pose7(p)[:3] - truth[colour]) < 0.01, colour


def start_episode_manager(ns: str, node_name: str, *params: str):
    """The installed episode_manager in namespace `ns` (5-step episodes of 50 Hz ticks, no reset,
    `params` added as name:=value) and a node of our own there, on a fresh domain; returns
    (process, context, executor, node, the episode events received)."""
    domain = unique_domain_id()
    args = ['reset_mode:=none', 'episode_steps:=5', 'tick_rate_hz:=50.0', *params]
    proc = subprocess.Popen(
        [executable('chef_real', 'episode_manager'), '--ros-args', '-r', f'__ns:={ns}',
         *[a for p in args for a in ('-p', p)]],
        env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    ex = SingleThreadedExecutor(context=ctx)
    node = Node(node_name, namespace=ns, context=ctx)
    ex.add_node(node)
    events = []
    create_contract_subscription(node, T.EPISODE_EVENTS, lambda m: events.append(E.EpisodeEvent.from_json(m.data)))
    return proc, ctx, ex, node, events


def stop_episode_manager(proc, ctx, node) -> None:
    """Tear our node down, SIGINT the episode manager: it must exit cleanly (0)."""
    node.destroy_node()
    rclpy.shutdown(context=ctx)
    proc.send_signal(2)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out


def test_episode_manager_runs_episodes_and_obeys_operator_services():
    # Runs the installed executable over DDS; ~6 s (process start + two short episodes).
    from std_msgs.msg import String
    from std_srvs.srv import Trigger
    proc, ctx, ex, node, events = start_episode_manager('/cell2', 'operator')
    cmd_pub = create_contract_publisher(node, T.EPISODE_COMMAND)
    js_pub = create_contract_publisher(node, T.JOINT_STATES)
    terms_pub = create_contract_publisher(node, T.REWARD_TERMS)
    abort = node.create_client(Trigger, 'episode_manager/abort')

    def spin(pred, timeout, stamp_ns=None):
        """Publish joint states (stamped now, or all with `stamp_ns`: a driver whose ticks stopped)
        and reward terms until pred() or timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred():
            js_pub.publish(joint_state(HOME, stamp_ns=stamp_ns or time.time_ns()))
            terms_pub.publish(named_vector_msg(list(REWARD_TERMS), [1.0] * len(REWARD_TERMS), 1))
            ex.spin_once(timeout_sec=0.01)
        return pred()
    try:
        assert spin(lambda: cmd_pub.get_subscription_count() > 0, 15), 'episode_manager did not come up'
        cmd_pub.publish(String(data=E.EpisodeCommand('start', seed=11, tags={'stage': 'execute'}).to_json()))
        assert spin(lambda: any(e.event == 'start' for e in events), 10)
        # ticks are the driver's: joint states that repeat one stamp (fresh enough for the watchdog)
        # count one tick however long they come, so the 5-step episode cannot end on them
        assert not spin(lambda: any(e.event != 'start' for e in events), 1.0, stamp_ns=time.time_ns())
        assert spin(lambda: any(e.event == 'end' for e in events), 15)
        start, end = events[0], events[-1]
        assert (start.event, start.cell, start.source, start.seed) == ('start', 'cell2', 'real', 11)
        assert end.steps == 5 and end.success is True and end.tags['stage'] == 'execute'
        assert end.returns['staged'] == pytest.approx(5.0, abs=1.0)
        # a long episode is aborted by the operator service
        events.clear()
        cmd_pub.publish(String(data=json.dumps({'op': 'start', 'seed': 12})))
        assert spin(lambda: any(e.event == 'start' for e in events), 10)
        fut = abort.call_async(Trigger.Request())
        assert spin(lambda: fut.done(), 10)
        assert fut.result().success in (True, False)
        assert spin(lambda: any(e.event in ('abort', 'end') for e in events), 10)
    finally:
        stop_episode_manager(proc, ctx, node)


def test_episode_manager_waits_for_a_policy_whose_inputs_flow_and_stamps_the_end_with_the_last_tick():
    # The installed executable with wait_for_policy: a start command is held while policy/info says
    # the policy's inputs are not complete, and runs once it says inputs_ready; tick 0 is the first
    # tick after the start, and the end carries the final tick's joint_states stamp.
    from std_msgs.msg import String
    from chef_contract.payloads import PolicyInfo
    proc, ctx, ex, node, events = start_episode_manager('/cell3', 'policy', 'wait_for_policy:=true',
                                                        'ready_settle_s:=0.2')
    cmd_pub = create_contract_publisher(node, T.EPISODE_COMMAND)
    js_pub = create_contract_publisher(node, T.JOINT_STATES)
    info_pub = create_contract_publisher(node, T.POLICY_INFO)
    sent = []

    def spin(pred, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred():
            sent.append(time.time_ns())
            js_pub.publish(joint_state(HOME, stamp_ns=sent[-1]))
            ex.spin_once(timeout_sec=0.01)
        return pred()
    try:
        assert spin(lambda: cmd_pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0, 15), \
            'episode_manager did not come up'
        info_pub.publish(String(data=PolicyInfo(policy_id='scripted', kind='scripted', inputs_ready=False).to_json()))
        cmd_pub.publish(String(data=E.EpisodeCommand('start', seed=3).to_json()))
        assert not spin(lambda: bool(events), 2.0), 'started before the policy said its inputs flow'
        info_pub.publish(String(data=PolicyInfo(policy_id='scripted', kind='scripted', inputs_ready=True).to_json()))
        assert spin(lambda: any(e.event == 'end' for e in events), 15)
        start, end = events[0], events[-1]
        assert (start.event, end.event, end.steps) == ('start', 'end', 5)
        assert end.stamp_ns in sent                 # the final tick's observation stamp, not a wall time
        # tick 0 after the start, then 5 ticks >= 0.9 periods (of 20 ms) apart
        assert end.stamp_ns - start.stamp_ns >= 5 * 0.9 * 20e6
    finally:
        stop_episode_manager(proc, ctx, node)
