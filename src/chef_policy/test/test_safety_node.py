"""safety_filter node over real DDS: forwarding with stamps, workspace, stale watchdog, latched
e-stop with reset service, NaN guard."""

import json
import math
import time

from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from chef_contract import topics as T
from chef_contract.ros import ns_to_stamp, stamp_to_ns
from chef_contract.spec import ARM_JOINT_NAMES, CONTROL_PERIOD_S, GRIPPER_JOINT_NAME, WORKSPACE_HIGH_M
from chef_policy.safety_node import SafetyFilterNode
from rosutil import Harness, ros_graph, wait_for, wait_matched


OUT = (T.TWIST_CMD, T.GRIPPER_CMD, T.SAFETY_STATUS)
IN = (T.POLICY_TWIST, T.POLICY_GRIPPER, T.PINCH_POSE, T.JOINT_STATES, T.ESTOP)


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

    def observe(self, xyz=(0.6, 0.0, 0.17), yaw=0.0, stamp_ns=None):
        stamp = ns_to_stamp(stamp_ns if stamp_ns is not None else self.now_ns())
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

    def send_and_get(self, v, observe=True, frame=T.WORLD_FRAME, **kw):
        if observe:
            self.observe(**kw)
            time.sleep(0.005)
            self.observe(**kw)           # twice: a teleported TCP would read as a fast drift
        stamp = self.command(v, frame=frame)
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
        out = c.send_and_get((0.2, 0.0, 0.0, 0.5, 0.0, 0.0))
        assert math.isclose(out[0], 0.07) and out[3] == 0.0
        out = c.send_and_get((0.05, 0.03, 0.0, 0, 0, 0), xyz=(WORKSPACE_HIGH_M[0] - 0.005, 0.0, 0.17))
        assert out[0] == 0.0 and out[1] == 0.03
        h.pub(T.POLICY_GRIPPER, Float64MultiArray(data=[0.8]))
        assert wait_for(lambda: [m.data[0] for m in h.msgs(T.GRIPPER_CMD)] == [0.8])
        h.pub(T.POLICY_GRIPPER, Float64MultiArray(data=[2.0]))
        assert wait_for(lambda: len(h.msgs(T.GRIPPER_CMD)) == 2)
        assert h.msgs(T.GRIPPER_CMD)[-1].data[0] == 0.8        # clamped to closed
        assert wait_for(lambda: c.status() and c.status()['counters']['workspace_zeroed'] >= 1)


def test_stale_observations_zero_the_twist_within_two_periods():
    with graph() as (node, h):
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
        assert wait_for(lambda: c.status()['counters']['rejected_nonfinite'] >= 7)


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
