"""Safety rules every arm and gripper command passes through (ROS-free core of `safety_filter`).

Rules, applied in this order to each policy command (base_link frame, m/s and rad/s):

1. NaN/inf guard: a twist with any non-finite component becomes a zero twist; a non-finite gripper
   target is replaced by the held (last safe) target. Nothing non-finite is ever returned. A gripper
   command must be exactly one value (the Float64MultiArray of the gripper forward controller);
   any other length is rejected (`gripper_malformed`), the target held.
2. Command stamp: a command whose own stamp (`cmd_stamp`: the twist's header stamp, the gripper
   command's tick tag) is older than `stale_timeout_s` (0.1 s) at `now`, or ahead of `now` by more
   than `future_tolerance_s` (0.02 s), is rejected (`command_stale` / `command_future`): zero twist,
   gripper held. A command stamped 1 h ago, 1 h ahead or at epoch 0 never moves the arm.
3. Latched e-stop: once triggered, every twist is zero and the gripper holds until `reset_estop()`.
4. Stale-observation watchdog: if the newest TCP pose / joint state is older than `stale_timeout_s`
   (default 2 control periods = 0.1 s), or missing, the twist is zero and the gripper holds.
5. Velocity limits: angular x/y (not part of the benchmark's 4-D action) are zeroed; the yaw rate
   is clipped to +-`max_yaw_rate_rps` (1 rad/s); the linear part is scaled (direction kept) so that
   neither the commanded frame (the wrist, spec X1) nor the TCP point moves faster than
   `max_linear_speed_mps` (0.07 m/s) - see "TCP speed" below.
6. Workspace box (spec §B.5: outward components *zeroed, not clipped*). The rules act on the box
   shrunk by `workspace_margin_m` (3 mm: room for the arm to coast), for each of its faces:
   * lookahead: the TCP (pinch point) heads out through the face at the larger of its commanded
     and its measured (`tcp_velocity`) speed; if at that speed it would cross the face within
     `lookahead_s` (0.2 s: one tick in flight + ~0.09 s of controller lag, about 10 mm at
     0.07 m/s, measured in chef_sim), a commanded outward component is set to zero. Motion back
     in is always kept. (`lookahead_s` = 0, margin 0, no measured velocity = the benchmark rule.)
   * drift guard: if the *measured* motion heads out faster than `drift_speed_mps` (coasting
     after a zeroed command, or motion the arm's velocity controller couples in - yaw and
     lateral motion make the TCP slide sideways, up to ~0.05 m/s in chef_sim) and would cross the
     face within `lookahead_s`, or already moves out within `drift_margin_m` of it, the yaw rate
     and the other two linear components are zeroed too.
   * yaw band: within `drift_margin_m` of an x or y face, yaw is zeroed while the TCP moves out
     through that face at any speed (the slow creep that yaw couples into the TCP position).
   * return: a TCP just outside the shrunk box (at most `return_band_m` beyond the real box) whose
     command does not already bring it back gets `return_speed_mps` (0.01 m/s) inwards on that
     axis, which ends the slow creep no zeroing can stop. A TCP far outside (e.g. an episode
     that starts above the box) is only zeroed, as in the benchmark.
7. Wrist yaw (d(right_j6)/dt = wrist_yaw_sign * yaw rate): an outward yaw rate is zeroed once
   right_j6 is at or past WRIST_YAW_LIMITS_RAD (+-pi/2) - the benchmark's rule. The limit is a task
   convention (the Sawyer's right_j6 turns +-4.7 rad), and linear motion alone turns right_j6 a
   little (~0.02 rad/s in chef_sim), so the benchmark lets it overshoot slightly (<= 0.1 rad seen).
   Strict containment is available: `wrist_lookahead_s` (zero if right_j6, heading out at the
   larger of its commanded and measured `wrist_rate`, would pass within that time),
   `wrist_margin_rad` (act on the range shrunk by this) and `wrist_return_rps` (past the shrunk
   range, by at most `wrist_return_band_rad` more, turn right_j6 back in at this rate); with
   0.2 s / 0.05 rad / 0.2 rad/s right_j6 never left +-pi/2 under fuzzing (test_safety_sim.py).
8. TCP speed once more, on the twist rules 6-7 produced (a return component or a wrist return
   yaw may have been added).
9. Gripper target clamped to [open, closed] rad.

TCP speed (rules 5 and 8). The twist acts at the wrist site (`right_hand`: MoveIt Servo's frame on
the real cell, chef_sim's controller frame); the box and the speed cap are for the TCP (pinch point,
PINCH_TO_WRIST_M = 0.2 m further along the tool axis). The TCP moves at v_tcp = v + w x r, with r =
TCP - wrist (`tcp_offset`, from tcp/pinch_pose and tcp/wrist_pose; nominally (0, 0, -0.2012) with
the gripper pointing down, where yaw about base_link z moves the TCP only through a lateral offset).
The arm does not realise the twist exactly either: in chef_sim a norm-capped 0.07 m/s diagonal
with +-1 rad/s yaw moved the TCP at 0.086-0.089 m/s (the damped least-squares velocity controller
couples yaw into linear motion, still felt for a tick after the yaw command; yaw alone moves the
TCP at ~0.02 m/s), and straight 0.07 m/s commands at up to 0.078 m/s (joint velocity tracking). So
the linear part is scaled until

    (1 + tracking_margin) * |v + w x r| + yaw_coupling_mps_per_rps * yaw_recent <= max_linear_speed_mps

where yaw_recent is the largest |yaw| in effect within `coupling_hold_s` (0.1 s): this command's,
the last one returned (in effect until this one replaces it) and those replaced since. Defaults 0.1
and 0.025 m/s per rad/s (straight commands <= 0.064 m/s, with 1 rad/s yaw <= 0.041 m/s) kept the
measured TCP speed within the cap (+2 %) under fuzzing in chef_sim (test_safety_sim.py,
test_safety_fuzz_process.py); `tracking_margin` = `yaw_coupling_mps_per_rps` = 0 caps |v + w x r|
alone (the benchmark caps the commanded wrist twist only). The commanded linear speed is capped at
`max_linear_speed_mps` as well (what the benchmark and the sim bridge accept).

Command watchdog: `commands_silent(now)` is True once no twist has arrived for `command_timeout_s`
(1.5 control periods = 0.075 s); the node then publishes zero twists of its own (realtime only).

`SafetyFilter.filter` never raises on bad numbers; it returns what may reach the actuators and a
`FilterStatus` naming every rule that changed the command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from chef_contract.config import field_
from chef_contract.payloads import SAFETY_STATES
from chef_contract.spec import (
    CONTROL_PERIOD_S, GRIPPER_CLOSED_POSITION_RAD, GRIPPER_OPEN_POSITION_RAD, MAX_LINEAR_SPEED_MPS,
    MAX_YAW_RATE_RPS, PINCH_TO_WRIST_M, WORKSPACE_HIGH_M, WORKSPACE_LOW_M, WRIST_YAW_LIMITS_RAD,
)

STATES = SAFETY_STATES                     # ok | stale | estop (the safety/status payload's)
ZERO_TWIST = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
Twist6 = Tuple[float, float, float, float, float, float]   # vx, vy, vz (m/s), wx, wy, wz (rad/s)
NOMINAL_TCP_OFFSET_M = (0.0, 0.0, -PINCH_TO_WRIST_M)     # TCP - wrist, gripper pointing down
# SafetyLimits fields that are the task's geometry (chef_contract.spec), not tunable per node: the
# safety_filter node declares every other field as a parameter.
BENCHMARK_GEOMETRY = ('workspace_low_m', 'workspace_high_m', 'wrist_yaw_limits_rad',
                      'gripper_range_rad')
# Reasons for which a command is refused outright (zero twist / held gripper), not merely limited.
REJECTIONS = ('twist_frame', 'twist_nonfinite', 'command_stale', 'command_future',
              'gripper_nonfinite', 'gripper_malformed')


@dataclass
class SafetyLimits:
    """The numbers the filter enforces (defaults = the benchmark's, chef_contract.spec).

    Each field's help / min / max is also the `safety_filter` node's parameter declaration (every
    field but BENCHMARK_GEOMETRY is a node parameter, config/safety_filter.yaml)."""

    max_linear_speed_mps: float = field_(MAX_LINEAR_SPEED_MPS, min=1e-4, max=MAX_LINEAR_SPEED_MPS,
                                         help='cap on the TCP (pinch point) speed, m/s; may only be '
                                              'lowered')
    max_yaw_rate_rps: float = field_(MAX_YAW_RATE_RPS, min=1e-4, max=MAX_YAW_RATE_RPS,
                                     help='cap on the yaw rate, rad/s')
    tracking_margin: float = field_(0.1, min=0.0, max=1.0,
                                    help='the arm may move the TCP this fraction faster than '
                                         'commanded: the linear cap is divided by 1 + this')
    yaw_coupling_mps_per_rps: float = field_(0.025, min=0.0, max=0.05,
                                             help='TCP speed the arm couples in per rad/s of yaw '
                                                  '(m/s per rad/s), taken off the linear cap')
    coupling_hold_s: float = field_(2 * CONTROL_PERIOD_S, min=0.0, max=1.0,
                                    help='yaw sent within this long still counts for the coupling, s')
    workspace_low_m: Tuple[float, float, float] = field_(WORKSPACE_LOW_M, help='box low corner, m')
    workspace_high_m: Tuple[float, float, float] = field_(WORKSPACE_HIGH_M, help='box high corner, m')
    wrist_yaw_limits_rad: Tuple[float, float] = field_(WRIST_YAW_LIMITS_RAD, help='right_j6 range, rad')
    wrist_yaw_sign: float = field_(-1.0, choices=(-1.0, 1.0),
                                   help='d(right_j6)/dt = sign * base_link yaw rate (-1: gripper '
                                        'pointing down)')
    wrist_lookahead_s: float = field_(0.0, min=0.0, max=1.0,
                                      help='right_j6 prediction horizon, s; 0 = benchmark rule '
                                           '(zero once past the limit)')
    wrist_margin_rad: float = field_(0.0, min=0.0, max=0.5,
                                     help='right_j6 rules act on +-(pi/2 - this), rad')
    wrist_return_rps: float = field_(0.0, min=0.0, max=1.0,
                                     help='yaw rate that turns right_j6 back inside, rad/s (0 = never)')
    wrist_return_band_rad: float = field_(0.2, min=0.0, max=1.0,
                                          help='how far past the shrunk range the wrist return '
                                               'still applies, rad')
    workspace_margin_m: float = field_(0.003, min=0.0, max=0.05,
                                       help='rules act on the box shrunk by this (room to coast), m')
    lookahead_s: float = field_(4 * CONTROL_PERIOD_S, min=0.0, max=1.0,
                                help='workspace prediction horizon, s; 0 = benchmark rule')
    drift_margin_m: float = field_(0.015, min=0.0, max=0.1,
                                   help='band inside each face where uncommanded outward motion '
                                        'stops the other components (drift guard), m')
    drift_speed_mps: float = field_(0.002, min=0.0, max=0.1,
                                    help='measured outward TCP speed that counts as drift, m/s')
    return_speed_mps: float = field_(0.01, min=0.0, max=0.07,
                                     help='inward speed given to a TCP just outside the shrunk box, '
                                          'm/s (0 = zeroing only)')
    return_band_m: float = field_(0.01, min=0.0, max=0.1,
                                  help='how far outside the box the return still applies, m')
    stale_timeout_s: float = field_(2 * CONTROL_PERIOD_S, min=0.01, max=1.0,
                                    help='observation or command stamp older than this -> zero '
                                         'twist, gripper hold, s')
    future_tolerance_s: float = field_(0.02, min=0.0, max=0.5,
                                       help='command stamped further ahead of now than this -> '
                                            'rejected, s')
    command_timeout_s: float = field_(0.075, min=0.01, max=1.0,             # 1.5 control periods
                                      help='no twist for this long -> the node sends zero twists '
                                           '(realtime), s')
    gripper_range_rad: Tuple[float, float] = field_(
        (GRIPPER_OPEN_POSITION_RAD, GRIPPER_CLOSED_POSITION_RAD), help='gripper target range, rad')

    def __post_init__(self):
        if not 0 < self.max_linear_speed_mps <= MAX_LINEAR_SPEED_MPS:
            raise ValueError(f'max_linear_speed_mps must be in (0, {MAX_LINEAR_SPEED_MPS}]')
        if not 0 < self.max_yaw_rate_rps <= MAX_YAW_RATE_RPS:
            raise ValueError(f'max_yaw_rate_rps must be in (0, {MAX_YAW_RATE_RPS}]')
        if any(lo >= hi for lo, hi in zip(self.workspace_low_m, self.workspace_high_m)):
            raise ValueError('workspace_low_m must be below workspace_high_m on every axis')
        if self.lookahead_s < 0 or self.wrist_lookahead_s < 0 or self.stale_timeout_s <= 0:
            raise ValueError('lookahead_s must be >= 0 and stale_timeout_s > 0')
        if self.command_timeout_s <= 0:
            raise ValueError('command_timeout_s must be > 0')
        if min(self.drift_margin_m, self.drift_speed_mps, self.return_speed_mps, self.return_band_m,
               self.workspace_margin_m, self.wrist_margin_rad, self.wrist_return_rps,
               self.wrist_return_band_rad, self.tracking_margin, self.yaw_coupling_mps_per_rps,
               self.coupling_hold_s, self.future_tolerance_s) < 0:
            raise ValueError('margins, bands, speeds and tolerances must be >= 0')
        if any(hi - lo <= 2 * self.workspace_margin_m
               for lo, hi in zip(self.workspace_low_m, self.workspace_high_m)):
            raise ValueError('workspace_margin_m leaves no room inside the box')
        if self.yaw_coupling_mps_per_rps * self.max_yaw_rate_rps >= self.max_linear_speed_mps:
            raise ValueError('yaw_coupling_mps_per_rps * max_yaw_rate_rps leaves no linear speed')
        if self.wrist_yaw_sign not in (-1.0, 1.0):
            raise ValueError('wrist_yaw_sign must be +1 or -1')

    @property
    def inner_low_m(self) -> np.ndarray:
        return np.asarray(self.workspace_low_m, np.float64) + self.workspace_margin_m

    @property
    def inner_high_m(self) -> np.ndarray:
        return np.asarray(self.workspace_high_m, np.float64) - self.workspace_margin_m

    def tcp_speed_budget(self, yaw_recent_rps: float) -> float:
        """Largest |v + w x r| (m/s) allowed while yaw up to `yaw_recent_rps` is in effect."""
        room = self.max_linear_speed_mps - self.yaw_coupling_mps_per_rps * abs(yaw_recent_rps)
        return max(room, 0.0) / (1.0 + self.tracking_margin)


SAFETY_PARAMETER_FILE = 'safety_filter.yaml'     # in the config dir; every safety_filter node loads it
SAFETY_NODE_KEY = '/**/safety_filter'


def load_limits(path=None) -> SafetyLimits:
    """The SafetyLimits a graph's safety_filter nodes enforce: the SafetyLimits fields of their parameter
    file (`path`, default config/safety_filter.yaml). ROS-free code that filters commands
    (chef_loop.sim_eval) takes its limits from here and passes the one object on, so it enforces what
    the cells do. The file's other keys are the node's own parameters (safety_node.NodeParams)."""
    import dataclasses
    from pathlib import Path

    import yaml

    from chef_contract.graph import default_config_dir
    path = Path(path) if path else default_config_dir() / SAFETY_PARAMETER_FILE
    params = (yaml.safe_load(path.read_text()) or {}).get(SAFETY_NODE_KEY, {}).get('ros__parameters', {})
    names = {f.name for f in dataclasses.fields(SafetyLimits)}
    return SafetyLimits(**{k: v for k, v in params.items() if k in names})


@dataclass
class FilterStatus:
    """What the filter did to one command."""

    state: str                                      # ok | stale | estop
    reasons: Tuple[str, ...] = ()                   # rules that changed the command

    @property
    def changed(self) -> bool:
        return bool(self.reasons)

    @property
    def rejection(self) -> Optional[str]:
        """The reason the command was refused outright (zero twist / held gripper), or None."""
        return next((r for r in self.reasons if r in REJECTIONS), None)


COUNTERS = ('commands', 'gripper_commands', 'unchanged', 'rejected_nonfinite', 'rejected_stamp',
            'rejected_malformed', 'stopped_estop', 'stopped_stale', 'stopped_silent', 'speed_limited',
            'workspace_zeroed', 'workspace_returned', 'drift_zeroed', 'wrist_zeroed', 'wrist_returned',
            'angular_xy_zeroed', 'gripper_clamped', 'gripper_held')


@dataclass
class SafetyFilter:
    """Stateful filter: latched e-stop, held gripper target, recent yaw, counters. Times are seconds."""

    limits: SafetyLimits = field(default_factory=SafetyLimits)

    def __post_init__(self):
        self.estop_latched = False
        self.estop_reason = ''
        self.held_gripper: Optional[float] = None
        self.last_twist_time: Optional[float] = None     # `now` of the last twist command
        self._yaw_out = 0.0                               # |yaw| of the last twist returned, rad/s
        self._yaw_out_since = math.nan                    # ... returned at this `now`
        self._yaw_superseded: List[Tuple[float, float]] = []   # (now it was replaced, |yaw|)
        self.counters: Dict[str, int] = {k: 0 for k in COUNTERS}

    # --- e-stop ----------------------------------------------------------------------------------
    def trigger_estop(self, reason: str = 'estop') -> None:
        if not self.estop_latched:
            self.estop_latched = True
            self.estop_reason = reason

    def reset_estop(self) -> None:
        self.estop_latched = False
        self.estop_reason = ''

    # --- state -----------------------------------------------------------------------------------
    def observation_fresh(self, now: float, obs_stamp: Optional[float]) -> bool:
        """Is an observation stamped `obs_stamp` fresh at `now`? (stamps far in the future are not)"""
        if obs_stamp is None or not math.isfinite(obs_stamp) or not math.isfinite(now):
            return False
        return abs(now - obs_stamp) <= self.limits.stale_timeout_s

    def state(self, now: float, obs_stamp: Optional[float]) -> str:
        if self.estop_latched:
            return 'estop'
        return 'ok' if self.observation_fresh(now, obs_stamp) else 'stale'

    def command_stamp_problem(self, now: float, cmd_stamp: Optional[float]) -> Optional[str]:
        """'command_stale' / 'command_future' if a command stamped `cmd_stamp` may not act at `now`
        (None = unstamped: nothing to judge)."""
        if cmd_stamp is None:
            return None
        if not (math.isfinite(cmd_stamp) and math.isfinite(now)):
            return 'command_stale'
        if now - cmd_stamp > self.limits.stale_timeout_s:
            return 'command_stale'
        if cmd_stamp - now > self.limits.future_tolerance_s:
            return 'command_future'
        return None

    def commands_silent(self, now: float) -> bool:
        """No twist command for more than `command_timeout_s`, or none yet, or the clock went back
        by more than that?"""
        last = self.last_twist_time
        if last is None or not math.isfinite(now):
            return True
        return abs(now - last) > self.limits.command_timeout_s

    # --- the filter ------------------------------------------------------------------------------
    def filter(self, twist: Optional[Sequence[float]], gripper, tcp_pose: Optional[Sequence[float]],
               wrist_yaw: Optional[float], now: float, obs_stamp: Optional[float],
               tcp_velocity: Optional[Sequence[float]] = None, wrist_rate: Optional[float] = None,
               cmd_stamp: Optional[float] = None, tcp_offset: Optional[Sequence[float]] = None
               ) -> Tuple[Optional[Twist6], Optional[float], FilterStatus]:
        """Filter one command -> (twist or None, gripper target rad or None, status).

        twist: (vx, vy, vz, wx, wy, wz) at the wrist site in base_link axes, or None when only a
        gripper command arrived (the result's twist is then None too). gripper: target rad, or the
        gripper command's data (a sequence that must hold exactly one value), or None when only a
        twist arrived. tcp_pose: latest TCP (pinch) position (x, y, z, ...) in base_link, m.
        wrist_yaw: latest right_j6 angle, rad. now / obs_stamp: current time and the stamp of the
        older of the two latest observations, s. tcp_velocity: measured TCP velocity (m/s,
        base_link) for the drift guard, None if unknown. wrist_rate: measured d(right_j6)/dt,
        rad/s, or None. cmd_stamp: the command's own stamp, s (None: not judged). tcp_offset: TCP
        minus wrist position, m (None: NOMINAL_TCP_OFFSET_M). The returned gripper is None only
        while no safe target was ever seen (nothing to hold).
        """
        reasons: List[str] = []
        state = self.state(now, obs_stamp)
        if tcp_pose is not None and not np.all(np.isfinite(np.asarray(tcp_pose[:3], float))):
            state = 'estop' if state == 'estop' else 'stale'
        if wrist_yaw is not None and not math.isfinite(wrist_yaw):
            wrist_yaw = None
        stamp_problem = self.command_stamp_problem(now, cmd_stamp)

        if gripper is not None:
            self._filter_gripper(gripper, state, stamp_problem, reasons)
        out_twist = None
        if twist is not None:
            self.counters['commands'] += 1
            if math.isfinite(now):
                self.last_twist_time = now
            out_twist = self._filter_twist(twist, tcp_pose, wrist_yaw, state, reasons, tcp_velocity,
                                           wrist_rate, stamp_problem, now, tcp_offset)
            self._yaw_sent(now, abs(out_twist[5]))
            if not reasons:
                self.counters['unchanged'] += 1
        return out_twist, self.held_gripper, FilterStatus(state, tuple(reasons))

    def _filter_gripper(self, gripper, state: str, stamp_problem: Optional[str], reasons) -> None:
        """Rules 1-4 and 9 for a gripper command; a safe target becomes the held one."""
        self.counters['gripper_commands'] += 1
        try:
            size = None if isinstance(gripper, (str, bytes)) else len(gripper)
        except TypeError:                                   # a bare number (or a 0-d array)
            size = None
        if size is None:
            value = gripper
        elif size == 1:
            value = gripper[0]
        else:
            reasons.append('gripper_malformed')
            self.counters['rejected_malformed'] += 1
            self.counters['gripper_held'] += 1
            return
        g = float(value) if _is_number(value) else math.nan
        if not math.isfinite(g):
            reasons.append('gripper_nonfinite')
            self.counters['rejected_nonfinite'] += 1
            self.counters['gripper_held'] += 1
        elif stamp_problem is not None:
            reasons.append(stamp_problem)
            self.counters['rejected_stamp'] += 1
            self.counters['gripper_held'] += 1
        elif state != 'ok':
            reasons.append(f'gripper_hold_{state}')
            self.counters['gripper_held'] += 1
        else:
            lo, hi = self.limits.gripper_range_rad
            clamped = min(max(g, lo), hi)
            if clamped != g:
                reasons.append('gripper_clamped')
                self.counters['gripper_clamped'] += 1
            self.held_gripper = clamped

    def _filter_twist(self, twist, tcp_pose, wrist_yaw, state, reasons, tcp_velocity=None,
                      wrist_rate=None, stamp_problem=None, now=math.nan, tcp_offset=None) -> Twist6:
        lim = self.limits
        try:
            v = np.array(twist, dtype=np.float64).reshape(6)          # a copy: never mutate input
        except (TypeError, ValueError):
            v = np.full(6, np.nan)
        if not np.all(np.isfinite(v)):
            reasons.append('twist_nonfinite')
            self.counters['rejected_nonfinite'] += 1
            return ZERO_TWIST
        if stamp_problem is not None:
            reasons.append(stamp_problem)
            self.counters['rejected_stamp'] += 1
            return ZERO_TWIST
        if state == 'estop':
            reasons.append('estop')
            self.counters['stopped_estop'] += 1
            return ZERO_TWIST
        if state == 'stale' or tcp_pose is None:
            reasons.append('stale')
            self.counters['stopped_stale'] += 1
            return ZERO_TWIST
        if v[3] != 0.0 or v[4] != 0.0:
            v[3] = v[4] = 0.0
            reasons.append('angular_xy_zeroed')
            self.counters['angular_xy_zeroed'] += 1
        if abs(v[5]) > lim.max_yaw_rate_rps:
            v[5] = math.copysign(lim.max_yaw_rate_rps, v[5])
            self._count_speed_limited(reasons)
        r = _tcp_offset(tcp_offset)
        self._cap_tcp_speed(v, r, now, reasons)
        pos = np.asarray(tcp_pose[:3], np.float64)
        vel = _finite3(tcp_velocity)
        self._workspace(v, pos, vel, reasons)
        if v[5] != 0.0 and vel is not None and self._sliding_out_sideways(pos, vel):
            v[5] = 0.0
            reasons.append('workspace_yaw_band')
            self.counters['drift_zeroed'] += 1
        self._wrist(v, wrist_yaw, wrist_rate, reasons)
        self._cap_tcp_speed(v, r, now, reasons)        # a return component / wrist return may add
        return tuple(float(x) for x in v)

    def _count_speed_limited(self, reasons) -> None:
        if 'speed_limited' not in reasons:
            reasons.append('speed_limited')
            self.counters['speed_limited'] += 1

    # --- TCP speed (rules 5 and 8) ---------------------------------------------------------------
    def recent_yaw(self, now: float) -> float:
        """Largest |yaw| (rad/s) in effect within coupling_hold_s before `now`: the last twist
        returned (in effect until the next replaces it) and those replaced since now - hold."""
        hold = self.limits.coupling_hold_s
        if math.isfinite(now):
            self._yaw_superseded = [(t, y) for t, y in self._yaw_superseded if abs(now - t) <= hold]
        return max([self._yaw_out] + [y for _, y in self._yaw_superseded])

    def _yaw_sent(self, now: float, yaw_abs: float) -> None:
        """A twist with |yaw| `yaw_abs` was returned at `now`: it replaces the last one, which
        counts on for coupling_hold_s if it was in effect for any time (a caller that passes the
        same `now` every tick gets the previous command's yaw only)."""
        if self._yaw_out > 0.0 and now != self._yaw_out_since:
            self._yaw_superseded.append((now, self._yaw_out))
        self._yaw_out, self._yaw_out_since = yaw_abs, now

    def _cap_tcp_speed(self, v: np.ndarray, r: np.ndarray, now: float, reasons) -> None:
        """Scale v[:3] (and, if w x r alone is too fast, v[3:]) so the TCP speed fits the budget and
        the commanded (wrist) linear speed the cap."""
        budget = self.limits.tcp_speed_budget(max(abs(v[5]), self.recent_yaw(now)))
        coupled = np.cross(v[3:], r)                       # w x r, m/s
        c = float(np.linalg.norm(coupled))
        if c > budget:                                     # only with a strange TCP offset
            v[3:] *= budget / c
            coupled = np.cross(v[3:], r)
            self._count_speed_limited(reasons)
        scale = min(_largest_scale(v[:3], coupled, budget),        # the TCP point ...
                    _largest_scale(v[:3], np.zeros(3), self.limits.max_linear_speed_mps))  # ... and the wrist
        if scale < 1.0:
            v[:3] *= scale
            self._count_speed_limited(reasons)

    def tcp_velocity(self, twist: Sequence[float], tcp_offset: Optional[Sequence[float]] = None
                     ) -> np.ndarray:
        """Linear velocity (m/s) of the TCP under `twist` at the wrist site: v + w x r."""
        v = np.asarray(twist, np.float64).reshape(6)
        return v[:3] + np.cross(v[3:], _tcp_offset(tcp_offset))

    def _wrist(self, v: np.ndarray, j6: Optional[float], j6_rate: Optional[float], reasons) -> None:
        """Rule 7 on the yaw range shrunk by wrist_margin_rad; edits v[5] in place."""
        lim = self.limits
        if j6 is None:
            if v[5] != 0.0:
                v[5] = 0.0
                reasons.append('wrist_unknown')
                self.counters['wrist_zeroed'] += 1
            return
        lo = lim.wrist_yaw_limits_rad[0] + lim.wrist_margin_rad
        hi = lim.wrist_yaw_limits_rad[1] - lim.wrist_margin_rad
        for sign, face in ((1.0, hi), (-1.0, lo)):
            out_cmd = sign * lim.wrist_yaw_sign * v[5]       # j6 speed out through this limit, rad/s
            out_meas = sign * j6_rate if j6_rate is not None and math.isfinite(j6_rate) else 0.0
            room = sign * (face - j6)
            heading = max(out_cmd, out_meas)
            if out_cmd > 0.0 and room - heading * lim.wrist_lookahead_s <= 0.0:
                v[5] = 0.0
                reasons.append('wrist_yaw')
                self.counters['wrist_zeroed'] += 1
            if (room < 0.0 and lim.wrist_return_rps > 0.0
                    and -room <= lim.wrist_margin_rad + lim.wrist_return_band_rad
                    and sign * lim.wrist_yaw_sign * v[5] > -lim.wrist_return_rps):
                v[5] = -sign * lim.wrist_yaw_sign * lim.wrist_return_rps
                reasons.append('wrist_return')
                self.counters['wrist_returned'] += 1

    def _workspace(self, v: np.ndarray, pos: np.ndarray, vel: Optional[np.ndarray], reasons) -> None:
        """Rule 6 on the box shrunk by workspace_margin_m (`lo`, `hi`); edits v in place."""
        lim = self.limits
        lo, hi = lim.inner_low_m, lim.inner_high_m
        drift_axis = None
        for i, axis in enumerate('xyz'):
            for sign, face in ((1.0, hi[i]), (-1.0, lo[i])):
                out_cmd = sign * v[i]                         # speed out through this face, m/s
                out_meas = sign * vel[i] if vel is not None else 0.0
                room = sign * (face - pos[i])                 # distance inside the face (< 0: out)
                heading = max(out_cmd, out_meas)
                if heading > 0.0 and room - heading * lim.lookahead_s < 0.0:
                    if out_cmd > 0.0:                         # the command pushes out: zero it
                        v[i] = 0.0
                        reasons.append(f'workspace_{axis}')
                        self.counters['workspace_zeroed'] += 1
                    if out_meas > lim.drift_speed_mps and drift_axis is None:
                        drift_axis = i                        # coasting / coupled motion out
                if (room < 0.0 and lim.return_speed_mps > 0.0 and -room <= lim.workspace_margin_m
                        + lim.return_band_m and sign * v[i] > -lim.return_speed_mps):
                    v[i] = -sign * lim.return_speed_mps       # just outside: ease back in
                    reasons.append(f'workspace_return_{axis}')
                    self.counters['workspace_returned'] += 1
            if drift_axis is None and vel is not None and lim.drift_margin_m > 0:
                if ((vel[i] > lim.drift_speed_mps and pos[i] > hi[i] - lim.drift_margin_m)
                        or (vel[i] < -lim.drift_speed_mps and pos[i] < lo[i] + lim.drift_margin_m)):
                    drift_axis = i
        if drift_axis is not None:
            returning = {'xyz'.index(r[-1]) for r in reasons if r.startswith('workspace_return_')}
            others = [j for j in (0, 1, 2, 5) if j != drift_axis and v[j] != 0.0 and j not in returning]
            if others:
                v[others] = 0.0
                reasons.append(f'workspace_drift_{"xyz"[drift_axis]}')
                self.counters['drift_zeroed'] += 1

    def _sliding_out_sideways(self, pos: np.ndarray, vel: np.ndarray) -> bool:
        """Within drift_margin_m of an x/y face and moving out through it (at any speed)?"""
        lim = self.limits
        lo, hi = lim.inner_low_m, lim.inner_high_m
        for i in range(2):
            if vel[i] > 0.0 and pos[i] > hi[i] - lim.drift_margin_m:
                return True
            if vel[i] < 0.0 and pos[i] < lo[i] + lim.drift_margin_m:
                return True
        return False

    def stop_command(self) -> Tuple[Twist6, Optional[float]]:
        """What the watchdog sends while stale / e-stopped: zero twist, held gripper."""
        return ZERO_TWIST, self.held_gripper


def _finite3(vel) -> Optional[np.ndarray]:
    if vel is None:
        return None
    try:
        arr = np.array(vel, np.float64).reshape(3)
    except (TypeError, ValueError):
        return None
    return arr if np.all(np.isfinite(arr)) else None


def _is_number(x) -> bool:
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True


def _tcp_offset(offset) -> np.ndarray:
    """TCP - wrist (m): `offset` when it is a finite 3-vector no longer than 2 x PINCH_TO_WRIST_M,
    else the nominal (gripper pointing down)."""
    r = _finite3(offset)
    if r is None or np.linalg.norm(r) > 2 * PINCH_TO_WRIST_M:
        return np.asarray(NOMINAL_TCP_OFFSET_M, np.float64)
    return r


def _largest_scale(a: np.ndarray, c: np.ndarray, budget: float) -> float:
    """Largest s in [0, 1] with |s a + c| <= budget (|c| <= budget); 0 for a non-finite |a|."""
    norm = math.hypot(*a)                              # no overflow on the way for 1e308s
    if norm == 0.0:
        return 1.0
    if not math.isfinite(norm):
        return 0.0
    uc = float(np.dot(a / norm, c))
    room = uc * uc - float(np.dot(c, c)) + budget * budget
    t = -uc + math.sqrt(max(room, 0.0))                # the largest |s a| that fits, m/s
    return min(1.0, max(0.0, t / norm))
