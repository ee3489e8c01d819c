"""A hostile policy in its own process (own rclpy context), for test_safety_fuzz_process.py.

Publishes on policy/twist_cmd and policy/gripper_cmd of one cell, as a policy would, and reports on
stdout (one JSON object per line):
  1. steer: 20 Hz valid commands towards the box centre until the TCP is inside the box (an episode
     may start above it);                                                 -> {"event": "entered"}
  2. fuzz for --fuzz-s seconds and at least --messages messages, alternating
     * held segments at 20 Hz: policy-like commands held 3-15 ticks, valid stamps - saturated
       diagonals with +-1 rad/s yaw (issue 16.3), saturated axes, random twists;
     * 1 kHz bursts of 0.3 s: NaN / inf / 1e9 components, stamps 1 h or 0.5 s old or ahead, epoch 0,
       a wrong frame, valid random twists, and gripper arrays of length 0, 1, 2, 7 with NaN / inf /
       1e9, stale or future tick tags;
  3. 0.3 s of calm valid commands, one last twist, then silence for --silence-s.
                                -> {"event": "done", "last_twist_monotonic": ..., "bad_stamps_ns": [...]}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import rclpy
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64MultiArray

from chef_contract import topics as T
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, gripper_command_msg, ns_to_stamp,
)
from chef_contract.spec import CONTROL_PERIOD_S, WORKSPACE_HIGH_M, WORKSPACE_LOW_M
from chef_contract.testing import BackgroundSpin

LO, HI = np.array(WORKSPACE_LOW_M), np.array(WORKSPACE_HIGH_M)
CENTRE = (LO + HI) / 2
HOUR_NS = 3600 * 10**9
BURST_S = 0.3
BURST_PERIOD_S = 0.001           # 1 kHz


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


class Commander:
    def __init__(self, node, rng: np.random.Generator):
        self.node = node
        self.rng = rng
        self.pose = None                                   # latest pinch position, m
        self.counts = {}
        self.bad_stamps = []                               # stamps of twists that must never move the arm
        self.pub_twist = create_contract_publisher(node, T.POLICY_TWIST)
        self.pub_gripper = create_contract_publisher(node, T.POLICY_GRIPPER)
        create_contract_subscription(node, T.PINCH_POSE, self._on_pose)

    def _on_pose(self, msg) -> None:
        p = msg.pose.position
        self.pose = np.array([p.x, p.y, p.z])

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def twist(self, v, stamp_ns=None, frame=T.WORLD_FRAME, kind='valid') -> int:
        msg = TwistStamped()
        stamp_ns = self.now_ns() if stamp_ns is None else stamp_ns
        msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), frame
        (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
         msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) = (float(x) for x in v)
        self.pub_twist.publish(msg)
        self.count(f'twist_{kind}')
        return stamp_ns

    def gripper(self, data, tick_ns=None, kind='valid') -> None:
        msg = gripper_command_msg(0.0, tick_ns)
        msg.data = [float(x) for x in data]
        self.pub_gripper.publish(msg)
        self.count(f'gripper_{kind}')

    @property
    def inside(self) -> bool:
        return self.pose is not None and bool(np.all(self.pose > LO + 0.01) and np.all(self.pose < HI - 0.01))

    # --- phases ----------------------------------------------------------------------------------
    def steer_in(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not self.inside:
            if self.pose is not None:
                v = np.clip((CENTRE - self.pose) * 3, -0.07, 0.07)
                self.gripper([0.0], self.now_ns())
                self.twist((*v, 0.0, 0.0, 0.0), kind='steer')
            time.sleep(CONTROL_PERIOD_S)
        return self.inside

    def held_segment(self) -> None:
        """A policy-like command held 3-15 ticks at 20 Hz, valid stamps."""
        rng = self.rng
        kind = rng.integers(3)
        d = 0.07 / math.sqrt(2)
        if kind == 0:                                      # issue 16.3: norm-capped diagonal + yaw
            v = (rng.choice([-d, d]), rng.choice([-d, d]), 0.0, 0.0, 0.0, rng.choice([-1.0, 1.0]))
        elif kind == 1:                                    # saturated axes
            v = tuple(np.sign(rng.normal(size=6)) * np.array([0.07, 0.07, 0.07, 0.0, 0.0, 1.0]))
        else:
            v = tuple(np.concatenate([rng.uniform(-0.1, 0.1, 3), rng.uniform(-0.5, 0.5, 2),
                                      rng.uniform(-1.5, 1.5, 1)]))
        grip = [float(rng.choice([0.0, 0.8]))]
        for _ in range(int(rng.integers(3, 16))):
            stamp = self.now_ns()
            self.gripper(grip, stamp)
            self.twist(v, stamp, kind='held')
            time.sleep(CONTROL_PERIOD_S)

    def burst(self) -> None:
        """0.3 s at 1 kHz of garbage and valid commands mixed, a gripper command every third ms."""
        rng = self.rng
        t_next = time.monotonic()
        for i in range(int(BURST_S / BURST_PERIOD_S)):
            now = self.now_ns()
            v = np.concatenate([rng.uniform(-0.2, 0.2, 3), rng.uniform(-0.5, 0.5, 2), rng.uniform(-2, 2, 1)])
            kind = rng.choice(['valid', 'nonfinite', 'huge', 'stale_hour', 'stale', 'future_hour', 'future',
                               'epoch0', 'frame'])
            stamp, frame = now, T.WORLD_FRAME
            if kind == 'nonfinite':
                v[rng.integers(6)] = rng.choice([math.nan, math.inf, -math.inf])
            elif kind == 'huge':
                v[rng.integers(6)] = rng.choice([1e9, -1e9])
            elif kind == 'stale_hour':
                stamp = now - HOUR_NS
            elif kind == 'stale':
                stamp = now - 500_000_000
            elif kind == 'future_hour':
                stamp = now + HOUR_NS
            elif kind == 'future':
                stamp = now + 500_000_000
            elif kind == 'epoch0':
                stamp = 0
            elif kind == 'frame':
                frame = 'tcp'
            self.twist(v, stamp, frame, kind=str(kind))
            if stamp != now:
                self.bad_stamps.append(stamp)
            if i % 3 == 0:
                self.garbage_gripper(now)
            t_next += BURST_PERIOD_S
            time.sleep(max(0.0, t_next - time.monotonic()))

    def garbage_gripper(self, now: int) -> None:
        rng = self.rng
        kind = rng.choice(['valid', 'empty', 'two', 'seven', 'nonfinite', 'huge', 'stale', 'future'])
        data, tick = [float(rng.choice([0.0, 0.8]))], now
        if kind == 'empty':
            data = []
        elif kind == 'two':
            data = [0.8, 0.0]
        elif kind == 'seven':
            data = list(rng.uniform(0, 0.8, 7))
        elif kind == 'nonfinite':
            data = [float(rng.choice([math.nan, math.inf, -math.inf]))]
        elif kind == 'huge':
            data = [1e9]
        elif kind == 'stale':
            tick = now - HOUR_NS
        elif kind == 'future':
            tick = now + HOUR_NS
        self.gripper(data, tick, kind=str(kind))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--namespace', default='/cell0')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--fuzz-s', type=float, default=20.0)
    ap.add_argument('--messages', type=int, default=10000)
    ap.add_argument('--silence-s', type=float, default=1.5)
    ap.add_argument('--steer-timeout-s', type=float, default=20.0)
    args = ap.parse_args(argv)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)                                # ROS_DOMAIN_ID from the environment
    node = rclpy.create_node('fuzz_commander', namespace=args.namespace, context=ctx)
    cmd = Commander(node, np.random.default_rng(args.seed))
    spin = BackgroundSpin(node, ctx)
    try:
        end = time.monotonic() + 60.0
        while time.monotonic() < end and (cmd.pose is None or cmd.pub_twist.get_subscription_count() == 0
                                          or cmd.pub_gripper.get_subscription_count() == 0):
            time.sleep(0.05)
        if cmd.pose is None:
            emit(event='error', reason='no tcp/pinch_pose')
            return 1
        if not cmd.steer_in(args.steer_timeout_s):
            emit(event='error', reason=f'TCP not inside the box: {cmd.pose.tolist()}')
            return 1
        emit(event='entered', monotonic=time.monotonic())
        t_end = time.monotonic() + args.fuzz_s
        while time.monotonic() < t_end or sum(cmd.counts.values()) < args.messages:
            if cmd.rng.random() < 0.5:
                cmd.burst()
            else:
                cmd.held_segment()
            if time.monotonic() > t_end + 20.0:
                break
        v = (CENTRE - cmd.pose) / max(float(np.linalg.norm(CENTRE - cmd.pose)), 1e-3) * 0.03
        for _ in range(6):                                 # calm before the silence: queues drain
            cmd.twist((*v, 0.0, 0.0, 0.0), kind='calm')
            time.sleep(CONTROL_PERIOD_S)
        last_stamp = cmd.twist((*v, 0.0, 0.0, 0.0), kind='last')
        last = time.monotonic()
        time.sleep(args.silence_s)
        emit(event='done', last_twist_monotonic=last, last_twist_stamp_ns=last_stamp, counts=cmd.counts,
             messages=sum(cmd.counts.values()), bad_stamps_ns=cmd.bad_stamps)
        return 0
    finally:
        spin.close()


if __name__ == '__main__':
    sys.exit(main())
