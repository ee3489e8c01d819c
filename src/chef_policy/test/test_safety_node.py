"""safety_filter node over real DDS: forwarding with stamps, workspace, stale watchdog, command
stamps judged against the clock (realtime and lockstep), command watchdog, TCP speed with the
wrist-to-TCP offset, malformed gripper arrays, latched e-stop with reset service, NaN guard, and
the parameters being the SafetyLimits fields."""

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import yaml

from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from chef_contract import topics as T
from chef_contract.ros import ns_to_stamp, stamp_to_ns
from chef_contract.spec import ARM_JOINT_NAMES, CONTROL_PERIOD_S, GRIPPER_JOINT_NAME, WORKSPACE_HIGH_M
from chef_policy.safety import BENCHMARK_GEOMETRY, SafetyFilter, SafetyLimits
from chef_policy.safety_node import LIMIT_PARAMS, NodeParams, Params, SafetyFilterNode
from rosutil import Harness, ros_graph, wait_for, wait_matched


OUT = (T.TWIST_CMD, T.GRIPPER_CMD, T.SAFETY_STATUS)
IN = (T.POLICY_TWIST, T.POLICY_GRIPPER, T.PINCH_POSE, T.WRIST_POSE, T.JOINT_STATES, T.ESTOP)
WS = Path(__file__).resolve().parents[3]


def graph():
    return ros_graph(SafetyFilterNode, lambda context: Harness(OUT, context=context))


class Cell:
    """Drives the harness: observations at the node's clock, commands with given stamps."""

    def __init__(self, h: Harness, node=None):
        self.h = h
        self.node = node
        h.prepare(IN)
        wait_matched(h, IN)

    def now_ns(self):
        return self.h.get_clock().now().nanoseconds

    def observe(self, xyz=(0.6, 0.0, 0.17), yaw=0.0, stamp_ns=None, tcp_offset=None):
        """Pinch pose + joint state (+ the wrist pose tcp_offset above the pinch point, if given)."""
        stamp = ns_to_stamp(stamp_ns if stamp_ns is not None else self.now_ns())
        if tcp_offset is not None:
            wp = PoseStamped()
            wp.header.stamp, wp.header.frame_id = stamp, T.WORLD_FRAME
            wp.pose.position.x, wp.pose.position.y, wp.pose.position.z = np.subtract(xyz, tcp_offset)
            self.h.pub(T.WRIST_POSE, wp)
        ps = PoseStamped()
        ps.header.stamp, ps.header.frame_id = stamp, T.WORLD_FRAME
        ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = xyz
        ps.pose.orientation.x = 1.0
        js = JointState()
        js.header.stamp = stamp
        js.name = list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME]
        js.position = [0.0] * 6 + [yaw, 0.0]
        self.h.pub(T.PINCH_POSE, ps)
        self.h.pub(T.JOINT_STATES, js)
        if self.node is not None:              # wait until the filter has seen both
            want = ps.header.stamp.sec + ps.header.stamp.nanosec * 1e-9
            assert wait_for(lambda: self.node._tcp_stamp == want and self.node._js_stamp == want, 5.0)
            if tcp_offset is not None:
                assert wait_for(lambda: self.node._wrist_stamp == want, 5.0)

    def command(self, v=(0.01, 0.0, 0.0, 0.0, 0.0, 0.0), stamp_ns=None, frame=T.WORLD_FRAME):
        tw = TwistStamped()
        tw.header.stamp = ns_to_stamp(stamp_ns if stamp_ns is not None else self.now_ns())
        tw.header.frame_id = frame
        (tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z,
         tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z) = v
        self.h.pub(T.POLICY_TWIST, tw)
        return stamp_to_ns(tw.header.stamp)

    def gripper(self, node, value):
        """Send one gripper command and wait until the node processed it (command QoS is KEEP_LAST 1,
        so a burst may legitimately be collapsed to its newest message)."""
        n = node.filter.counters['gripper_commands']
        self.h.pub(T.POLICY_GRIPPER, Float64MultiArray(data=value))
        assert wait_for(lambda: node.filter.counters['gripper_commands'] > n, 5.0)

    def twist_in_estop(self, node, v):
        """Send a twist while e-stopped; every twist output since then must be zero."""
        n_out = len(self.h.msgs(T.TWIST_CMD))
        n = node.filter.counters['stopped_estop']
        self.observe()
        time.sleep(0.02)
        self.command(v)
        assert wait_for(lambda: node.filter.counters['stopped_estop'] > n, 5.0)
        time.sleep(0.05)
        outs = self.h.msgs(T.TWIST_CMD)[n_out:]
        assert outs and all(m.twist.linear.x == 0.0 for m in outs)

    def out_with_stamp(self, stamp_ns):
        for m in self.h.msgs(T.TWIST_CMD):
            if stamp_to_ns(m.header.stamp) == stamp_ns:
                return m
        return None

    def send_and_get(self, v, observe=True, frame=T.WORLD_FRAME, stamp_ns=None, **kw):
        if observe:
            self.observe(**kw)
            time.sleep(0.005)
            self.observe(**kw)           # twice: a teleported TCP would read as a fast drift
        stamp = self.command(v, frame=frame, stamp_ns=stamp_ns)
        assert wait_for(lambda: self.out_with_stamp(stamp) is not None, 5.0), 'command not forwarded'
        m = self.out_with_stamp(stamp).twist
        return (m.linear.x, m.linear.y, m.linear.z, m.angular.x, m.angular.y, m.angular.z)

    def status(self):
        msgs = self.h.msgs(T.SAFETY_STATUS)
        return json.loads(msgs[-1].data) if msgs else None


def test_forwards_with_stamp_and_enforces_limits_and_workspace():
    with graph() as (node, h):
        c = Cell(h, node)
        assert c.send_and_get((0.01, -0.02, 0.03, 0.0, 0.0, 0.2)) == (0.01, -0.02, 0.03, 0.0, 0.0, 0.2)
        assert c.send_and_get((0.01, 0.0, 0.0, 0.0, 0.0, 0.0), frame='tcp') == (0.0,) * 6   # wrong frame
        assert wait_for(lambda: c.status()['last_rejection']['reason'] == 'twist_frame')
        time.sleep(node.filter.limits.coupling_hold_s)      # the 0.2 rad/s yaw no longer couples
        out = c.send_and_get((0.2, 0.0, 0.0, 0.5, 0.0, 0.0))
        assert math.isclose(out[0], node.filter.limits.tcp_speed_budget(0.0)) and out[3] == 0.0
        out = c.send_and_get((0.05, 0.03, 0.0, 0, 0, 0), xyz=(WORKSPACE_HIGH_M[0] - 0.005, 0.0, 0.17))
        assert out[0] == 0.0 and out[1] == 0.03
        h.pub(T.POLICY_GRIPPER, Float64MultiArray(data=[0.8]))
        assert wait_for(lambda: [m.data[0] for m in h.msgs(T.GRIPPER_CMD)] == [0.8])
        h.pub(T.POLICY_GRIPPER, Float64MultiArray(data=[2.0]))
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 2)
        assert h.msgs(T.GRIPPER_CMD)[-1].data[0] == 0.8        # clamped to closed
        assert wait_for(lambda: c.status() and c.status()['counters']['workspace_zeroed'] >= 1)


def test_stale_observations_zero_the_twist_within_two_periods():
    def node(context):          # the command watchdog off: the zeros measured here are the stale rule's
        return SafetyFilterNode(context=context, parameter_overrides=[
            Parameter('command_timeout_s', Parameter.Type.DOUBLE, 1.0)])
    with ros_graph(node, lambda context: Harness(OUT, context=context)) as (node, h):
        c = Cell(h, node)
        for _ in range(10):                        # a healthy 20 Hz cell
            c.observe()
            c.command()
            time.sleep(CONTROL_PERIOD_S)
        t_last = time.monotonic()
        c.observe()                                 # last fresh observation
        n_before = len(h.msgs(T.TWIST_CMD))
        assert wait_for(lambda: any(t > t_last and m.twist.linear.x == 0.0 and
                                    stamp_to_ns(m.header.stamp) > 0
                                    for t, m in h.timed(T.TWIST_CMD)[n_before:]), 2.0)
        first_zero = min(t for t, m in h.timed(T.TWIST_CMD)[n_before:] if t > t_last)
        delay = first_zero - t_last
        # stale after 2 periods (0.1 s), checked every 10 ms; 40 ms slack for a loaded 2-core box
        assert 2 * CONTROL_PERIOD_S - 0.01 <= delay <= 2 * CONTROL_PERIOD_S + 0.05, delay
        assert c.send_and_get((0.01, 0, 0, 0, 0, 0), observe=False) == (0.0,) * 6
        h.pub(T.POLICY_GRIPPER, Float64MultiArray(data=[0.8]))   # gripper holds (nothing held yet)
        time.sleep(0.2)
        assert h.msgs(T.GRIPPER_CMD) == []
        assert wait_for(lambda: c.status()['state'] == 'stale')
        n = len(h.msgs(T.TWIST_CMD))
        time.sleep(0.3)                             # zero keeps coming at the control rate
        assert len(h.msgs(T.TWIST_CMD)) - n >= 4
        assert c.send_and_get((0.01, 0, 0, 0, 0, 0))[0] == 0.01   # fresh again: commands pass


def test_estop_latches_until_reset_service():
    with graph() as (node, h):
        c = Cell(h, node)
        cli = h.create_client(Trigger, T.SAFETY_RESET)
        assert cli.wait_for_service(timeout_sec=5.0)

        def reset():
            fut = cli.call_async(Trigger.Request())
            assert wait_for(fut.done, 5.0)
            return fut.result()

        assert c.send_and_get((0.01, 0, 0, 0, 0, 0))[0] == 0.01
        c.gripper(node, [0.8])
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 1)
        n = len(h.msgs(T.TWIST_CMD))
        h.pub(T.ESTOP, Bool(data=True))
        assert wait_for(lambda: c.status()['estop'])
        assert any(m.twist.linear.x == 0.0 for m in h.msgs(T.TWIST_CMD)[n:])   # immediate stop
        c.twist_in_estop(node, (0.01, 0, 0, 0, 0, 0))
        h.pub(T.ESTOP, Bool(data=False))            # releasing the button does not clear the latch
        assert wait_for(lambda: not c.status()['estop_input'])
        c.twist_in_estop(node, (0.01, 0, 0, 0, 0, 0))
        c.gripper(node, [0.0])
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 2)
        assert h.msgs(T.GRIPPER_CMD)[-1].data[0] == 0.8       # gripper held
        h.pub(T.ESTOP, Bool(data=True))
        assert wait_for(lambda: c.status()['estop_input'])
        r = reset()
        assert not r.success and 'still' in r.message        # refused while asserted
        c.twist_in_estop(node, (0.01, 0, 0, 0, 0, 0))
        h.pub(T.ESTOP, Bool(data=False))
        assert wait_for(lambda: not c.status()['estop_input'])
        assert reset().success
        assert c.send_and_get((0.01, 0, 0, 0, 0, 0))[0] == 0.01


def test_nan_never_reaches_the_output():
    with graph() as (node, h):
        c = Cell(h, node)
        c.observe()
        time.sleep(0.02)
        c.gripper(node, [0.8])
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 1)
        bad = [(math.nan, 0, 0, 0, 0, 0), (0, math.inf, 0, 0, 0, 0), (0, 0, 0, 0, 0, -math.inf),
               (1e308, 1e308, 0, 0, 0, 0)]
        for v in bad:
            out = c.send_and_get(v)
            assert all(math.isfinite(x) for x in out) and abs(out[0]) <= 0.07
        for g in ([math.nan], [math.inf], [-math.inf], []):
            c.observe()
            c.gripper(node, g)
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 5)
        assert [m.data[0] for m in h.msgs(T.GRIPPER_CMD)] == [0.8] * 5
        assert all(all(math.isfinite(x) for x in (m.twist.linear.x, m.twist.linear.y, m.twist.linear.z,
                                                  m.twist.angular.z))
                   for m in h.msgs(T.TWIST_CMD))
        assert wait_for(lambda: c.status()['counters']['rejected_nonfinite'] >= 6
                        and c.status()['counters']['rejected_malformed'] == 1)    # the empty array


def test_lockstep_sends_no_commands_of_its_own():
    """With use_sim_time the watchdog never invents a command (the sim would take it for t_k)."""
    def node(context):
        return SafetyFilterNode(context=context, parameter_overrides=[
            Parameter('use_sim_time', Parameter.Type.BOOL, True)])
    with ros_graph(node, lambda context: Harness(OUT, context=context)) as (_, h):
        Cell(h)
        time.sleep(0.5)                          # no clock, no observations: stale, but silent
        assert h.msgs(T.TWIST_CMD) == []
        assert wait_for(lambda: h.msgs(T.SAFETY_STATUS) and
                        json.loads(h.msgs(T.SAFETY_STATUS)[-1].data)['state'] == 'stale')


def test_lockstep_command_waits_for_the_observation_of_its_tick():
    """Lockstep: a command stamped t_k that overtakes the filter's copy of observation k (separate
    DDS paths) is held until that observation arrives and then judged on it - never zeroed as
    stale for a race; one whose observation never comes is filtered after lockstep_pair_s with
    what is there. The tick-tagged gripper command is held the same way, order kept."""
    from rosgraph_msgs.msg import Clock

    from chef_contract.ros import gripper_command_msg, gripper_tick_stamp

    def node(context):
        return SafetyFilterNode(context=context, parameter_overrides=[
            Parameter('use_sim_time', Parameter.Type.BOOL, True),
            Parameter('lockstep_pair_s', Parameter.Type.DOUBLE, 0.3)])
    with ros_graph(node, lambda context: Harness(OUT, context=context)) as (node, h):
        c = Cell(h, node)
        h.prepare([T.CLOCK])
        wait_matched(h, [T.CLOCK])

        def clock(ns):
            h.pub(T.CLOCK, Clock(clock=ns_to_stamp(ns)))
            assert wait_for(lambda: node.get_clock().now().nanoseconds == ns, 5.0)

        t0 = 5_000_000_000
        t1, t2 = t0 + 50_000_000, t0 + 100_000_000
        clock(t0)
        c.observe(stamp_ns=t0)
        clock(t1)                                   # tick 1: its commands overtake its observation
        n_grip = node.filter.counters['gripper_commands']
        h.pub(T.POLICY_GRIPPER, gripper_command_msg(0.8, t1))
        c.command((0.05, 0.03, 0.0, 0.0, 0.0, 0.0), stamp_ns=t1)
        time.sleep(0.15)
        assert c.out_with_stamp(t1) is None and h.msgs(T.GRIPPER_CMD) == []   # held
        assert node.filter.counters['gripper_commands'] == n_grip
        c.observe(stamp_ns=t1)
        assert wait_for(lambda: c.out_with_stamp(t1) is not None, 5.0)
        m = c.out_with_stamp(t1).twist
        assert (m.linear.x, m.linear.y) == (0.05, 0.03)                        # judged fresh: passes
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 1, 5.0)
        g = h.msgs(T.GRIPPER_CMD)[0]
        assert g.data[0] == 0.8 and gripper_tick_stamp(g) == t1
        clock(t2)                                   # tick 2's observation never reaches the filter
        sent = time.monotonic()
        c.command((0.01, 0.0, 0.0, 0.0, 0.0, 0.0), stamp_ns=t2)
        assert wait_for(lambda: c.out_with_stamp(t2) is not None, 5.0)
        assert time.monotonic() - sent >= 0.25                                 # waited lockstep_pair_s
        assert c.out_with_stamp(t2).twist.linear.x == 0.01   # tick 1's observation is 50 ms old: fresh
        assert node.filter.counters['stopped_stale'] == 0


def test_command_stamps_are_judged_against_the_clock():
    """Issue 16.1 (realtime): commands stamped 1 h old, 1 h ahead or at epoch 0 are zeroed, and
    safety/status names the reason; a command stamped now passes."""
    with graph() as (node, h):
        c = Cell(h, node)
        hour = 3600 * 10**9
        for offset_ns, reason in ((-hour, 'command_stale'), (hour, 'command_future'), (None, 'command_stale'),
                                  (-300_000_000, 'command_stale'), (200_000_000, 'command_future')):
            c.observe()
            stamp_ns = 0 if offset_ns is None else c.now_ns() + offset_ns      # None: epoch 0
            assert c.send_and_get((0.03, 0.0, 0.0, 0.0, 0.0, 0.5), observe=False,
                                  stamp_ns=stamp_ns) == (0.0,) * 6
            assert wait_for(lambda: c.status()['last_rejection'] == {
                'command': 'twist', 'reason': reason, 'stamp_ns': stamp_ns}, 2.0), (reason, c.status())
        assert c.send_and_get((0.03, 0.0, 0.0, 0.0, 0.0, 0.5)) == (0.03, 0.0, 0.0, 0.0, 0.0, 0.5)
        assert node.filter.counters['rejected_stamp'] == 5


def test_lockstep_judges_command_stamps_in_sim_time():
    """Issue 16.1 (lockstep): 'now' is the cell's /clock. A command an hour off the sim clock is
    zeroed; one for the tick whose observation arrived before its /clock message passes."""
    from rosgraph_msgs.msg import Clock

    def node(context):
        return SafetyFilterNode(context=context, parameter_overrides=[
            Parameter('use_sim_time', Parameter.Type.BOOL, True),
            Parameter('lockstep_pair_s', Parameter.Type.DOUBLE, 0.2)])
    with ros_graph(node, lambda context: Harness(OUT, context=context)) as (node, h):
        c = Cell(h, node)
        h.prepare([T.CLOCK])
        wait_matched(h, [T.CLOCK])
        t0 = 7_000_000_000
        h.pub(T.CLOCK, Clock(clock=ns_to_stamp(t0)))
        assert wait_for(lambda: node.get_clock().now().nanoseconds == t0, 5.0)
        c.observe(stamp_ns=t0)
        hour = 3600 * 10**9
        for stamp_ns, reason in ((t0 - hour, 'command_stale'), (t0 + hour, 'command_future'),
                                 (0, 'command_stale')):
            assert c.send_and_get((0.03, 0.0, 0.0, 0.0, 0.0, 0.0), observe=False,
                                  stamp_ns=stamp_ns) == (0.0,) * 6
            assert wait_for(lambda: c.status()['last_rejection']['reason'] == reason, 2.0)
        assert c.send_and_get((0.03, 0.0, 0.0, 0.0, 0.0, 0.0), observe=False, stamp_ns=t0)[0] == 0.03
        t1 = t0 + 50_000_000                        # tick 1's observation overtakes its /clock
        c.observe(stamp_ns=t1)
        assert node.get_clock().now().nanoseconds == t0
        assert c.send_and_get((0.03, 0.0, 0.0, 0.0, 0.0, 0.0), observe=False, stamp_ns=t1)[0] == 0.03
        assert node.filter.counters['rejected_stamp'] == 3


def test_gripper_arrays_of_other_lengths_are_rejected():
    """Issue 16.4: the bridge takes exactly one value; arrays of 2 or 7 are refused with a reason,
    the held target is sent instead."""
    with graph() as (node, h):
        c = Cell(h, node)
        c.observe()
        c.gripper(node, [0.8])
        assert wait_for(lambda: [m.data[0] for m in h.msgs(T.GRIPPER_CMD)] == [0.8])
        for bad in ([0.0, 0.0], [0.0] * 7):
            c.observe()
            c.gripper(node, bad)
            assert wait_for(lambda: c.status()['last_rejection'] == {
                'command': 'gripper', 'reason': 'gripper_malformed', 'stamp_ns': None}, 2.0)
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 3)
        assert all(list(m.data) == [0.8] for m in h.msgs(T.GRIPPER_CMD))
        assert node.filter.counters['rejected_malformed'] == 2


def test_command_watchdog_zeroes_within_two_periods_of_silence():
    """Issue 16.2: observations stay fresh, the policy falls silent: the filter itself publishes a
    zero twist within 2 control periods, keeps doing so, and says so in safety/status."""
    with graph() as (node, h):
        c = Cell(h, node)
        for _ in range(8):                          # a healthy 20 Hz cell
            c.observe()
            c.command((0.02, 0.0, 0.0, 0.0, 0.0, 0.0))
            time.sleep(CONTROL_PERIOD_S)
        last = c.command((0.02, 0.0, 0.0, 0.0, 0.0, 0.0))
        assert wait_for(lambda: c.out_with_stamp(last) is not None, 2.0)
        t_last = max(t for t, m in h.timed(T.TWIST_CMD) if stamp_to_ns(m.header.stamp) == last)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:               # observations keep coming: not stale
            c.observe()
            time.sleep(0.02)
        zeros = [(t, m) for t, m in h.timed(T.TWIST_CMD) if t > t_last]
        assert zeros and all(m.twist.linear.x == 0.0 for _, m in zeros)
        delay = zeros[0][0] - t_last
        timeout = node.filter.limits.command_timeout_s
        assert timeout - 0.01 <= delay <= 2 * CONTROL_PERIOD_S, delay
        assert len(zeros) >= 6                      # and once per period while silent
        assert all(stamp_to_ns(m.header.stamp) > last for _, m in zeros)
        st = c.status()
        assert st['command_silent'] and st['state'] == 'ok' and st['counters']['stopped_silent'] == 1
        assert c.send_and_get((0.02, 0, 0, 0, 0, 0))[0] == 0.02          # the policy is back
        assert wait_for(lambda: not c.status()['command_silent'], 2.0)


def test_tcp_speed_includes_yaw_about_the_wrist():
    """Issue 16.3: with the TCP 5 cm off the wrist's yaw axis (from tcp/wrist_pose), yaw adds 0.05
    m/s at the TCP; the linear part is scaled so the TCP point keeps the cap."""
    def node(context):
        return SafetyFilterNode(context=context, parameter_overrides=[
            Parameter('tracking_margin', Parameter.Type.DOUBLE, 0.0),
            Parameter('yaw_coupling_mps_per_rps', Parameter.Type.DOUBLE, 0.0)])
    with ros_graph(node, lambda context: Harness(OUT, context=context)) as (node, h):
        c = Cell(h, node)
        r = (0.05, 0.0, -0.2)                                 # w x r = (0, 0.05, 0) at 1 rad/s
        out = c.send_and_get((0.0, 0.07, 0.0, 0.0, 0.0, 1.0), tcp_offset=r)
        assert math.isclose(out[1], 0.02) and out[5] == 1.0
        assert math.isclose(np.linalg.norm(SafetyFilter().tcp_velocity(out, r)), 0.07)
        nominal = (0.0, 0.0, -0.2012)                         # on the yaw axis: no coupling
        assert c.send_and_get((0.0, 0.07, 0.0, 0.0, 0.0, 1.0), tcp_offset=nominal)[1] == 0.07


def test_parameters_are_the_safety_limits():
    """Every tunable SafetyLimits field is a parameter with the field's default, nothing is copied
    by hand (a new limit field becomes a parameter by itself); a change reaches the filter; the
    parameter file names each parameter the node declares."""
    names = {f.name for f in dataclasses.fields(Params)}
    limits = {f.name: f for f in dataclasses.fields(SafetyLimits)}
    assert set(LIMIT_PARAMS) == set(limits) - set(BENCHMARK_GEOMETRY)
    assert names == set(LIMIT_PARAMS) | {f.name for f in dataclasses.fields(NodeParams)}
    for f in dataclasses.fields(Params):
        if f.name in limits:
            assert f.default == limits[f.name].default and f.metadata == limits[f.name].metadata
    yaml_keys = set(yaml.safe_load((WS / 'config' / 'safety_filter.yaml').read_text())
                    ['/**/safety_filter']['ros__parameters'])
    assert yaml_keys == names
    with graph() as (node, h):
        assert node.filter.limits == SafetyLimits()
        for name in LIMIT_PARAMS:
            assert node.get_parameter(name).value == getattr(SafetyLimits(), name)
        node.set_parameters([Parameter('tracking_margin', Parameter.Type.DOUBLE, 0.2),
                             Parameter('future_tolerance_s', Parameter.Type.DOUBLE, 0.05)])
        assert node.filter.limits.tracking_margin == 0.2 and node.filter.limits.future_tolerance_s == 0.05
        r = node.set_parameters([Parameter('tracking_margin', Parameter.Type.DOUBLE, 5.0)])[0]
        assert not r.successful and 'maximum' in r.reason
