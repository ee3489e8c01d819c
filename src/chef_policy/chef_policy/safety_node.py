"""`safety_filter` node: the only path from a policy to the actuators (rules in chef_policy.safety).

Subscribes policy/twist_cmd, policy/gripper_cmd (raw policy output), tcp/pinch_pose, tcp/wrist_pose
and joint_states (TCP position for the workspace box, TCP - wrist offset for the TCP speed, right_j6
for the wrist limit), safety/estop (latched Bool: True latches the e-stop). Publishes
servo_node/delta_twist_cmds and gripper_controller/commands - each incoming command is filtered and
forwarded at once, in the callback, with its header.stamp preserved (lockstep sims wait for exactly
that stamp) - and the latched safety/status JSON (state, counters, the last rejected command and
why). Service safety/reset (std_srvs/Trigger) clears a latched e-stop, and is refused while
safety/estop still reads True.

Time: each command's own stamp (twist header, gripper tick tag) is judged against "now": the node
clock - wall time in realtime, the cell's sim time from /clock in lockstep (`timing: lockstep` or
`auto` with use_sim_time). In lockstep the sim publishes /clock = t_k just before tick k's
observations, but the filter may take the observation first; "now" is then advanced to the
observation's stamp, by at most one control period.

Watchdog: a timer every `watchdog_period_s` re-evaluates the state; when it turns stale or
e-stopped, or no twist has come for `command_timeout_s` (the policy fell silent), it publishes a
zero twist at once and then once per control period while it lasts (`active_stop`), so a real arm
halts whatever Servo's own timeout does. In a lockstep sim nothing moves without a command, so the
watchdog only filters and never sends commands of its own (a zero twist stamped 'now' would be taken
for the policy's command). There each command is also judged against the observation of its own
tick: a command stamped t_k that overtakes the filter's copy of observation k (separate DDS paths)
waits for it, at most `lockstep_pair_s` of wall time, since a filter that has not yet seen where the
arm is would rightly zero it.

Parameters: every SafetyLimits field except the task geometry (chef_policy.safety.BENCHMARK_GEOMETRY),
with the help and range the field declares, plus the node's own (NodeParams); `Params` is built from
both, so a limit is defined once.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import typing
from dataclasses import dataclass
from typing import Optional

from geometry_msgs.msg import TwistStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.params import declare_params
from chef_contract.payloads import SafetyStatus
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, gripper_command_msg, gripper_tick_stamp,
    ns_to_stamp, spin_node, stamp_to_ns,
)
from chef_contract.spec import ARM_JOINT_NAMES, CONTROL_PERIOD_S
from chef_policy.safety import BENCHMARK_GEOMETRY, SafetyFilter, SafetyLimits

WRIST_JOINT = ARM_JOINT_NAMES[-1]          # right_j6


def _stamp_s(stamp) -> float:
    """Header stamp -> s: the one conversion this node uses, so equal stamps compare equal."""
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class NodeParams:
    """The node's own parameters (the limits come from SafetyLimits, see Params)."""

    watchdog_period_s: float = field_(0.01, min=0.001, max=0.1, help='watchdog check period, s')
    active_stop: bool = field_(True, help='publish zero twists while stale/e-stopped or without '
                                          'commands (ignored with use_sim_time: a lockstep sim needs '
                                          'no active stop)')
    status_period_s: float = field_(1.0, min=0.05, max=60.0, help='safety/status heartbeat')
    lockstep_pair_s: float = field_(0.5, min=0.0, max=10.0,
                                    help='lockstep: wall s a command may wait for the observation of '
                                         'its tick before it is filtered with what is there')
    timing: str = field_('auto', choices=('auto', 'realtime', 'lockstep'),
                         help='lockstep: sim time from /clock (sets use_sim_time), no active stop; '
                              'auto: follow use_sim_time')


LIMIT_PARAMS = tuple(f.name for f in dataclasses.fields(SafetyLimits)
                     if f.name not in BENCHMARK_GEOMETRY)


def _params_class():
    """Params = the tunable SafetyLimits fields + NodeParams, each with its own default and metadata."""
    out = []
    for cls, names in ((SafetyLimits, LIMIT_PARAMS), (NodeParams, None)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if names is None or f.name in names:
                out.append((f.name, hints[f.name],
                            dataclasses.field(default=f.default, metadata=f.metadata)))
    cls = dataclasses.make_dataclass('Params', out)
    cls.__module__ = __name__
    cls.__doc__ = 'safety_filter parameters: the tunable SafetyLimits fields + NodeParams.'
    return cls


Params = _params_class()


def limits_from_params(p) -> SafetyLimits:
    """The SafetyLimits the parameters describe (raises ValueError on an inconsistent combination)."""
    return SafetyLimits(**{name: getattr(p, name) for name in LIMIT_PARAMS})


class SafetyFilterNode(Node):
    def __init__(self, **kwargs):
        super().__init__('safety_filter', **kwargs)
        self.p = declare_params(self, Params, on_change=self._on_params)
        if self.p.timing == 'lockstep' and not self._lockstep():
            self.set_parameters([Parameter('use_sim_time', Parameter.Type.BOOL, True)])
        self.filter = SafetyFilter(limits_from_params(self.p))
        self._tcp = None                  # latest pinch position (x, y, z), m
        self._tcp_stamp: Optional[float] = None
        self._tcp_velocity = None         # finite difference of the last two pinch poses, m/s
        self._yaw: Optional[float] = None
        self._yaw_rate: Optional[float] = None   # finite difference of right_j6, rad/s
        self._js_stamp: Optional[float] = None
        self._wrist = None                # latest wrist site position (x, y, z), m
        self._wrist_stamp: Optional[float] = None
        self._estop_input = False
        self._last_state = None
        self._last_stop_pub = -math.inf
        self._last_status_pub = -math.inf
        self._last_cmd_stamp_ns = 0
        self._silent = True               # no twist for command_timeout_s (watchdog's view)
        self._last_rejection: Optional[dict] = None   # the last command refused, and why
        self._rejection_pub_wall = -math.inf            # steady s of the last status it forced
        self._rejection_unpublished = False             # _last_rejection not in a status yet
        self._pending: list = []          # lockstep: (wall s, stamp ns, handler, msg) awaiting their tick
        self.pub_twist = create_contract_publisher(self, T.TWIST_CMD)
        self.pub_gripper = create_contract_publisher(self, T.GRIPPER_CMD)
        self.pub_status = create_contract_publisher(self, T.SAFETY_STATUS)
        create_contract_subscription(self, T.POLICY_TWIST, self._on_twist)
        create_contract_subscription(self, T.POLICY_GRIPPER, self._on_gripper)
        create_contract_subscription(self, T.PINCH_POSE, self._on_pinch)
        create_contract_subscription(self, T.WRIST_POSE, self._on_wrist)
        create_contract_subscription(self, T.JOINT_STATES, self._on_joints)
        create_contract_subscription(self, T.ESTOP, self._on_estop)
        self.create_service(Trigger, T.SAFETY_RESET, self._on_reset)
        self.create_timer(self.p.watchdog_period_s, self._watchdog)
        self.create_timer(self.p.watchdog_period_s, self._flush_overdue,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._publish_status(force=True)

    # --- helpers ---------------------------------------------------------------------------------
    def _on_params(self, p) -> None:
        try:
            self.filter.limits = limits_from_params(p)
        except ValueError as exc:          # inconsistent combination: keep the old limits
            self.get_logger().error(f'safety limits not changed: {exc}')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _command_now(self) -> float:
        """'Now' for judging a command: the node clock; in lockstep advanced to the newest
        observation stamp when /clock lags it (the sim publishes /clock first, but the filter may
        take the observation first), by at most one control period."""
        now = self._now()
        obs = self._obs_stamp()
        if self._lockstep() and obs is not None and obs > now:
            now = min(obs, now + CONTROL_PERIOD_S)
        return now

    def _tcp_offset(self):
        """TCP - wrist position (m) when both poses are of the same moment, else None (nominal)."""
        if self._wrist_stamp is None or self._tcp_stamp is None or \
                abs(self._wrist_stamp - self._tcp_stamp) > 1e-3:
            return None
        return tuple(a - b for a, b in zip(self._tcp, self._wrist))

    def _obs_stamp(self) -> Optional[float]:
        if self._tcp_stamp is None or self._js_stamp is None:
            return None
        return min(self._tcp_stamp, self._js_stamp)

    def _lockstep(self) -> bool:
        if self.p.timing == 'realtime':
            return False
        return bool(self.get_parameter('use_sim_time').value)

    # --- inputs ----------------------------------------------------------------------------------
    def _on_pinch(self, msg) -> None:
        p = msg.pose.position
        tcp = (p.x, p.y, p.z)
        stamp = _stamp_s(msg.header.stamp)
        if self._tcp_stamp is not None and 1e-3 < stamp - self._tcp_stamp < 0.5:
            dt = stamp - self._tcp_stamp
            self._tcp_velocity = tuple((a - b) / dt for a, b in zip(tcp, self._tcp))
        elif self._tcp_stamp is None or stamp - self._tcp_stamp >= 0.5 or stamp < self._tcp_stamp:
            self._tcp_velocity = None          # first pose, a gap or a reset: velocity unknown
        self._tcp, self._tcp_stamp = tcp, stamp
        self._flush_pending()

    def _on_wrist(self, msg) -> None:
        p = msg.pose.position
        self._wrist, self._wrist_stamp = (p.x, p.y, p.z), _stamp_s(msg.header.stamp)

    def _on_joints(self, msg) -> None:
        if WRIST_JOINT in msg.name:
            i = list(msg.name).index(WRIST_JOINT)
            if i < len(msg.position):
                yaw = float(msg.position[i])
                stamp = _stamp_s(msg.header.stamp)
                dt = stamp - self._js_stamp if self._js_stamp is not None else 0.0
                self._yaw_rate = (yaw - self._yaw) / dt if 1e-3 < dt < 0.5 else None
                self._yaw, self._js_stamp = yaw, stamp
                self._flush_pending()

    def _on_estop(self, msg) -> None:
        self._estop_input = bool(msg.data)
        if msg.data and not self.filter.estop_latched:
            self.filter.trigger_estop('safety/estop')
            self.get_logger().error('E-STOP latched (safety/estop = True); call safety/reset to clear')
            self._stop_now()
        self._publish_status(force=True)

    def _on_reset(self, request, response):
        if self._estop_input:
            response.success = False
            response.message = 'refused: safety/estop still reads True'
        else:
            was = self.filter.estop_latched
            self.filter.reset_estop()
            response.success = True
            response.message = 'e-stop cleared' if was else 'no e-stop was latched'
            self.get_logger().warning(response.message)
        self._publish_status(force=True)
        return response

    # --- the command path ------------------------------------------------------------------------
    def _paired(self, handler, msg, stamp) -> bool:
        """Lockstep: queue a command whose tick (header stamp, or None) has no observation yet (True
        = queued; `handler` runs when it arrives or `lockstep_pair_s` has passed)."""
        if stamp is None or not self._lockstep() or self.p.lockstep_pair_s <= 0:
            return False
        tick, obs = _stamp_s(stamp), self._obs_stamp()
        if obs is not None and obs >= tick:
            return False
        self._pending.append((time.monotonic(), tick, handler, msg))
        return True

    def _flush_pending(self, force_older_than: Optional[float] = None) -> None:
        """Run queued commands (in arrival order) whose tick has been observed, or that waited too long."""
        if not self._pending:
            return
        obs = self._obs_stamp()
        keep, run = [], []
        for item in self._pending:
            wall, tick, _, _ = item
            due = (obs is not None and obs >= tick) or \
                (force_older_than is not None and wall <= force_older_than)
            (run if due else keep).append(item)
        if not run:
            return
        self._pending = keep
        for _, _, handler, msg in run:
            handler(msg, paired=True)

    def _on_twist(self, msg: TwistStamped, paired: bool = False) -> None:
        if not paired and self._paired(self._on_twist, msg, msg.header.stamp):
            return
        t, a = msg.twist.linear, msg.twist.angular
        values = (t.x, t.y, t.z, a.x, a.y, a.z)
        wrong_frame = msg.header.frame_id not in ('', T.WORLD_FRAME)   # only base_link twists
        if wrong_frame:
            self.get_logger().error(f'twist in frame {msg.header.frame_id!r}, expected '
                                    f'{T.WORLD_FRAME!r}: zeroed', throttle_duration_sec=1.0)
            self.filter.counters['rejected_frame'] = self.filter.counters.get('rejected_frame', 0) + 1
            values = (float('nan'),) * 6                        # -> rejected as non-finite: zero
        twist, _, status = self.filter.filter(values, None, self._tcp, self._yaw, self._command_now(),
                                              self._obs_stamp(), self._tcp_velocity, self._yaw_rate,
                                              cmd_stamp=_stamp_s(msg.header.stamp),
                                              tcp_offset=self._tcp_offset())
        if wrong_frame:
            status = dataclasses.replace(status, reasons=('twist_frame',) + status.reasons)
        out = TwistStamped()
        out.header.stamp = msg.header.stamp                   # preserved: lockstep waits for it
        out.header.frame_id = T.WORLD_FRAME
        (out.twist.linear.x, out.twist.linear.y, out.twist.linear.z,
         out.twist.angular.x, out.twist.angular.y, out.twist.angular.z) = twist
        self.pub_twist.publish(out)
        self._last_cmd_stamp_ns = stamp_to_ns(msg.header.stamp)
        if 'stale' in status.reasons:
            now, obs = self._now(), self._obs_stamp()
            self.get_logger().warning(
                f'command stamped {self._last_cmd_stamp_ns} ns zeroed: observations stale '
                f'(clock {now:.3f} s, newest pose {self._tcp_stamp} s, joints {self._js_stamp} s'
                f'{"" if obs is None else f", age {now - obs:.3f} s"})', throttle_duration_sec=1.0)
        self._note_rejection('twist', self._last_cmd_stamp_ns, status)
        if status.state != self._last_state:
            self._publish_status(force=True, state=status.state)

    def _on_gripper(self, msg: Float64MultiArray, paired: bool = False) -> None:
        tick = gripper_tick_stamp(msg)
        if not paired and self._paired(self._on_gripper, msg, None if tick is None else ns_to_stamp(tick)):
            return
        _, gripper, status = self.filter.filter(None, list(msg.data), self._tcp, self._yaw,
                                                self._command_now(), self._obs_stamp(),
                                                cmd_stamp=None if tick is None else tick * 1e-9)
        if gripper is not None:                   # forward the tick tag (lockstep sims pair with it)
            self.pub_gripper.publish(gripper_command_msg(gripper, tick))
        self._note_rejection('gripper', tick, status)
        if status.state != self._last_state:
            self._publish_status(force=True, state=status.state)

    def _note_rejection(self, command: str, stamp_ns: Optional[int], status) -> None:
        """Keep the last refused command for safety/status, published at once or - when a status
        went out less than a control period ago (1 kHz of garbage must not flood it) - by the
        steady timer as soon as that period has passed."""
        reason = status.rejection
        if reason is None:
            return
        self._last_rejection = {'command': command, 'reason': reason, 'stamp_ns': stamp_ns}
        self._rejection_unpublished = True
        self._publish_rejection()
        if reason in ('command_stale', 'command_future'):
            self.get_logger().warning(
                f'{command} command stamped {stamp_ns} ns rejected ({reason}) at clock '
                f'{self._command_now():.3f} s', throttle_duration_sec=1.0)

    def _publish_rejection(self) -> None:
        wall = time.monotonic()
        if self._rejection_unpublished and wall - self._rejection_pub_wall >= CONTROL_PERIOD_S:
            self._rejection_pub_wall = wall
            self._publish_status(force=True)

    # --- watchdog --------------------------------------------------------------------------------
    def _stop_now(self) -> None:
        if self._lockstep() or not self.p.active_stop:
            return
        twist, _ = self.filter.stop_command()
        out = TwistStamped()
        out.header.stamp = self.get_clock().now().to_msg()
        out.header.frame_id = T.WORLD_FRAME
        self.pub_twist.publish(out)               # all zeros; the gripper simply keeps its target
        self._last_stop_pub = self._now()

    def _flush_overdue(self) -> None:
        """Steady-clock timer (sim time stands still while a lockstep command waits): overdue
        lockstep commands, a rejection not yet in safety/status."""
        if self._pending:
            self._flush_pending(force_older_than=time.monotonic() - self.p.lockstep_pair_s)
        self._publish_rejection()

    def _watchdog(self) -> None:
        now = self._now()
        state = self.filter.state(now, self._obs_stamp())
        silent = self.filter.commands_silent(now)
        active = not self._lockstep() and self.p.active_stop
        if silent and not self._silent and active:
            self.filter.counters['stopped_silent'] += 1
            self.get_logger().warning(f'no twist for {self.filter.limits.command_timeout_s} s: zero '
                                      'twist', throttle_duration_sec=5.0)
        if state == 'stale' and self._last_state == 'ok':
            self.get_logger().warning('observations stale: commands zeroed, gripper held')
        changed = state != self._last_state or silent != self._silent
        if (state != 'ok' or silent) and (changed or now - self._last_stop_pub >= CONTROL_PERIOD_S):
            self._stop_now()
        self._silent = silent
        self._publish_status(force=changed, state=state)

    def _publish_status(self, force: bool = False, state: Optional[str] = None) -> None:
        now = self._now()
        if not force and now - self._last_status_pub < self.p.status_period_s:
            return
        state = state or self.filter.state(now, self._obs_stamp())
        self._last_state = state
        self._last_status_pub = now
        self._rejection_unpublished = False
        self.pub_status.publish(String(data=SafetyStatus(
            state=state, estop=self.filter.estop_latched, estop_reason=self.filter.estop_reason,
            estop_input=self._estop_input, last_command_stamp_ns=self._last_cmd_stamp_ns,
            command_silent=self._silent, last_rejection=self._last_rejection,
            counters=dict(self.filter.counters)).to_json()))


NODE_PARAMS = {'safety_filter': Params}


def main(args=None):
    sys.exit(spin_node(SafetyFilterNode, args=args))
