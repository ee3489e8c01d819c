"""The recorder against the real MuJoCo sim_bridge (chef_sim) in lockstep, with a test-side policy:
bags close at the right ticks, the reader's actions are the commands sent, the rewards the bridge's
reward/terms of t+1, and the episode returns match the bridge's end event.

Slow-ish (10-30 s): the bridge process imports MuJoCo + dm_control and loads the cell (5-15 s on 2
busy cores) before two 8-step episodes run."""

import json
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.action import from_command, to_command
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, gripper_command_msg, ns_to_stamp, stamp_to_ns,
)
from chef_contract.spec import REWARD_TERMS
from chef_contract.testing import (
    BackgroundSpin, executable, ros_env, unique_domain_id,
)
from chef_recorder.dataset import Dataset
from chef_recorder.foxglove import bag_problems

CAM = 'basket_front_left'

try:
    BRIDGE = executable('chef_sim', 'sim_bridge')
except Exception:  # noqa: BLE001 - chef_sim not built in this checkout
    BRIDGE = None


class Policy:
    """Acts on every joint_states tick: raw command (policy/*) and the same as executed (safety)."""

    def __init__(self, domain):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node('policy', namespace='cell0', context=self.ctx)
        self.pubs = {n: create_contract_publisher(self.node, n) for n in
                     (T.POLICY_TWIST, T.POLICY_GRIPPER, T.POLICY_STEP, T.TWIST_CMD, T.GRIPPER_CMD)}
        self.sent = {}                                   # stamp -> action
        self.answers = {}                                # stamp -> (gripper, twist) published
        self.rewards = {}                                # stamp -> reward vector
        self.rng = np.random.default_rng(5)
        self.lock = threading.Lock()
        create_contract_subscription(self.node, T.JOINT_STATES, self._on_tick)
        create_contract_subscription(self.node, T.REWARD_TERMS, self._on_reward)
        self.spin = BackgroundSpin(self.node, self.ctx)


    def _on_reward(self, msg):
        with self.lock:
            vals = dict(zip(msg.name, msg.position))
            self.rewards[stamp_to_ns(msg.header.stamp)] = np.array([vals[t] for t in REWARD_TERMS], np.float32)

    def _on_tick(self, msg):
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp in self.answers:                        # a re-sent tick: the same answer, like policy_node
            self._publish(stamp, *self.answers[stamp])
            return
        a = self.rng.uniform(-1, 1, 5).astype(np.float32)
        (vx, vy, vz), yaw, grip = to_command(a)
        with self.lock:
            self.sent[stamp] = from_command((vx, vy, vz), yaw, grip)
        tw = TwistStamped()
        tw.header.stamp, tw.header.frame_id = ns_to_stamp(stamp), T.WORLD_FRAME
        tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = vx, vy, vz
        tw.twist.angular.z = yaw
        self.answers[stamp] = (grip, tw)
        self._publish(stamp, grip, tw)
        self.pubs[T.POLICY_STEP].publish(String(data=json.dumps(
            {'stamp_ns': stamp, 'intention': 'lift', 'action': a.tolist()})))

    def _publish(self, stamp, grip, tw):
        for g, t in ((T.POLICY_GRIPPER, T.POLICY_TWIST), (T.GRIPPER_CMD, T.TWIST_CMD)):
            self.pubs[g].publish(gripper_command_msg(grip, stamp))      # tagged like policy_node's
            self.pubs[t].publish(tw)

    def close(self):
        self.spin.close()


@pytest.mark.skipif(BRIDGE is None, reason='chef_sim (sim_bridge) is not built in this workspace')
def test_recorder_records_the_mujoco_sim_bridge_in_lockstep(tmp_path):
    data = tmp_path / 'data'
    domain = unique_domain_id()
    env = ros_env(domain)
    common = ['--ros-args', '-r', '__ns:=/cell0', '-r', '/clock:=/cell0/clock']
    recorder = subprocess.Popen(
        [executable('chef_recorder', 'recorder')] + common + ['-p', f'data_dir:={data}', '-p', f'cameras:=[{CAM}]',
                                                              '-p', 'reliable:=true'],     # as in config/sim.yaml
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    policy = Policy(domain)
    time.sleep(2.0)
    bridge = subprocess.Popen(
        [BRIDGE] + common + ['-p', 'preset:=fast', '-p', 'image_size:=32', '-p', f'cameras:=["{CAM}"]',
                             '-p', 'episode_steps:=8', '-p', 'episodes:=2', '-p', 'lockstep_timeout_s:=2.0',
                             '-p', 'wait_for_recorder:=true'],                   # as in config/graphs/sim.yaml
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((data / 'episodes' / 'cell0').glob('[!.]*'))) < 2:
            assert bridge.poll() is None or bridge.returncode == 0, bridge.stdout.read().decode()[-3000:]
            time.sleep(0.2)
    finally:
        for p in (bridge, recorder):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in (bridge, recorder):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        policy.close()
    ds = Dataset(data)
    records = ds.query()
    if len(records) != 2:
        logs = {n: p.stdout.read().decode(errors='replace')[-2000:] for n, p in
                (('bridge', bridge), ('recorder', recorder))}
        raise AssertionError(f'{[r.metadata["status"] for r in ds.query(complete=None)]}; '
                             f'{len(policy.sent)} ticks acted on; logs: {logs}')
    for rec in records:
        m = rec.metadata
        assert m['source'] == 'sim' and m['steps'] == 8 and m['steps_recorded'] == 8 and m['complete']
        assert m['dropped_messages'] == 0 and m['incomplete_ticks'] == 0 and m['rate_ok']
        assert m['clock'] == 'sim' and m['intention_schedule'] == [[0, 'lift']]
        assert bag_problems(rec.path) == []                # Foxglove shows its image and poses
        ep = ds.load(rec)
        assert ep.valid.all() and ep.frames[f'{CAM}/pixels'].shape == (9, 32, 32, 3)
        assert 'rgb30_red/abs_pose' in ep.frames
        for k in range(8):
            np.testing.assert_allclose(ep.actions[k], policy.sent[int(ep.stamps_ns[k])], atol=1e-6)
            np.testing.assert_allclose(ep.executed_actions[k], ep.actions[k], atol=1e-6)
            np.testing.assert_allclose(ep.reward_terms[k], policy.rewards[int(ep.stamps_ns[k + 1])], atol=1e-6)
        # the bridge's own per-term returns = the sum of the recorded transition rewards
        for i, term in enumerate(REWARD_TERMS):
            assert m['returns'][term] == pytest.approx(float(np.sum(ep.reward_terms[:, i], dtype=np.float64)),
                                                       abs=1e-4)
