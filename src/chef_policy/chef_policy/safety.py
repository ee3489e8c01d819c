"""Safety rules every arm and gripper command passes through (ROS-free core of `safety_filter`).

Rules, applied in this order to each policy command (base_link frame, m/s and rad/s):

1. NaN/inf guard: a twist with any non-finite component becomes a zero twist; a non-finite gripper
   target is replaced by the held (last safe) target. Nothing non-finite is ever returned.
2. Latched e-stop: once triggered, every twist is zero and the gripper holds until `reset_estop()`.
3. Stale-observation watchdog: if the newest TCP pose / joint state is older than `stale_timeout_s`
   (default 2 control periods = 0.1 s), or missing, the twist is zero and the gripper holds.
4. Velocity limits: angular x/y (not part of the benchmark's 4-D action) are zeroed; the linear
   vector is scaled by its norm to at most `max_linear_speed_mps` (0.07 m/s, spec precision X1);
   the yaw rate is clipped to +-`max_yaw_rate_rps` (1 rad/s).
5. Workspace box (spec §B.5: *zeroed, not clipped*): each linear component whose motion would take
   the TCP (pinch point) past a face of the box within `lookahead_s` is set to zero; a TCP outside
   the box may always move back in. `lookahead_s` = 0 is the benchmark's own rule (zero only once
   outside); the default (one control period) stops the TCP before it crosses a face.
6. Wrist yaw: the yaw rate is zeroed if it would take joint right_j6 past WRIST_YAW_LIMITS_RAD
   within `lookahead_s` (d(right_j6)/dt = wrist_yaw_sign * yaw rate).
7. Gripper target clamped to [open, closed] rad.

`SafetyFilter.filter` never raises on bad numbers; it returns what may reach the actuators and a
`FilterStatus` naming every rule that changed the command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from chef_contract.spec import (
    CONTROL_PERIOD_S, GRIPPER_CLOSED_POSITION_RAD, GRIPPER_OPEN_POSITION_RAD, MAX_LINEAR_SPEED_MPS,
    MAX_YAW_RATE_RPS, WORKSPACE_HIGH_M, WORKSPACE_LOW_M, WRIST_YAW_LIMITS_RAD,
)

STATES = ('ok', 'stale', 'estop')
ZERO_TWIST = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
Twist6 = Tuple[float, float, float, float, float, float]   # vx, vy, vz (m/s), wx, wy, wz (rad/s)


@dataclass
class SafetyLimits:
    """The numbers the filter enforces (defaults = the benchmark's, chef_contract.spec)."""

    max_linear_speed_mps: float = MAX_LINEAR_SPEED_MPS
    max_yaw_rate_rps: float = MAX_YAW_RATE_RPS
    workspace_low_m: Tuple[float, float, float] = WORKSPACE_LOW_M
    workspace_high_m: Tuple[float, float, float] = WORKSPACE_HIGH_M
    wrist_yaw_limits_rad: Tuple[float, float] = WRIST_YAW_LIMITS_RAD
    wrist_yaw_sign: float = -1.0      # gripper pointing down: right_j6 turns about -z of base_link
    lookahead_s: float = CONTROL_PERIOD_S
    stale_timeout_s: float = 2 * CONTROL_PERIOD_S
    gripper_range_rad: Tuple[float, float] = (GRIPPER_OPEN_POSITION_RAD, GRIPPER_CLOSED_POSITION_RAD)

    def __post_init__(self):
        if not 0 < self.max_linear_speed_mps <= MAX_LINEAR_SPEED_MPS:
            raise ValueError(f'max_linear_speed_mps must be in (0, {MAX_LINEAR_SPEED_MPS}]')
        if not 0 < self.max_yaw_rate_rps <= MAX_YAW_RATE_RPS:
            raise ValueError(f'max_yaw_rate_rps must be in (0, {MAX_YAW_RATE_RPS}]')
        if any(lo >= hi for lo, hi in zip(self.workspace_low_m, self.workspace_high_m)):
            raise ValueError('workspace_low_m must be below workspace_high_m on every axis')
        if self.lookahead_s < 0 or self.stale_timeout_s <= 0:
            raise ValueError('lookahead_s must be >= 0 and stale_timeout_s > 0')
        if self.wrist_yaw_sign not in (-1.0, 1.0):
            raise ValueError('wrist_yaw_sign must be +1 or -1')


@dataclass
class FilterStatus:
    """What the filter did to one command."""

    state: str                                      # ok | stale | estop
    reasons: Tuple[str, ...] = ()                   # rules that changed the command

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


COUNTERS = ('commands', 'gripper_commands', 'unchanged', 'rejected_nonfinite', 'stopped_estop',
            'stopped_stale', 'speed_limited', 'workspace_zeroed', 'wrist_zeroed', 'angular_xy_zeroed',
            'gripper_clamped', 'gripper_held')


@dataclass
class SafetyFilter:
    """Stateful filter: latched e-stop, held gripper target, counters. Times are seconds."""

    limits: SafetyLimits = field(default_factory=SafetyLimits)

    def __post_init__(self):
        self.estop_latched = False
        self.estop_reason = ''
        self.held_gripper: Optional[float] = None
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

    # --- the filter ------------------------------------------------------------------------------
    def filter(self, twist: Optional[Sequence[float]], gripper: Optional[float],
               tcp_pose: Optional[Sequence[float]], wrist_yaw: Optional[float], now: float,
               obs_stamp: Optional[float]) -> Tuple[Optional[Twist6], Optional[float], FilterStatus]:
        """Filter one command -> (twist or None, gripper target rad or None, status).

        twist: (vx, vy, vz, wx, wy, wz) in base_link, or None when only a gripper command arrived
        (the result's twist is then None too). gripper: target rad, or None when only a twist
        arrived. tcp_pose: latest TCP (pinch) position (x, y, z, ...) in base_link, m. wrist_yaw:
        latest right_j6 angle, rad. now / obs_stamp: current time and the stamp of the older of
        the two latest observations, s. The returned gripper is None only while no safe target
        was ever seen (nothing to hold).
        """
        lim = self.limits
        reasons = []
        state = self.state(now, obs_stamp)
        if tcp_pose is not None and not np.all(np.isfinite(np.asarray(tcp_pose[:3], float))):
            state = 'estop' if state == 'estop' else 'stale'
        if wrist_yaw is not None and not math.isfinite(wrist_yaw):
            wrist_yaw = None

        out_gripper = None
        if gripper is not None:
            self.counters['gripper_commands'] += 1
            g = float(gripper) if _is_number(gripper) else math.nan
            if not math.isfinite(g):
                reasons.append('gripper_nonfinite')
                self.counters['rejected_nonfinite'] += 1
                self.counters['gripper_held'] += 1
            elif state != 'ok':
                reasons.append(f'gripper_hold_{state}')
                self.counters['gripper_held'] += 1
            else:
                lo, hi = lim.gripper_range_rad
                clamped = min(max(g, lo), hi)
                if clamped != g:
                    reasons.append('gripper_clamped')
                    self.counters['gripper_clamped'] += 1
                self.held_gripper = clamped
        out_gripper = self.held_gripper

        out_twist = None
        if twist is not None:
            self.counters['commands'] += 1
            out_twist = self._filter_twist(twist, tcp_pose, wrist_yaw, state, reasons)
            if not reasons:
                self.counters['unchanged'] += 1
        return out_twist, out_gripper, FilterStatus(state, tuple(reasons))

    def _filter_twist(self, twist, tcp_pose, wrist_yaw, state, reasons) -> Twist6:
        lim = self.limits
        try:
            v = np.asarray(twist, dtype=np.float64).reshape(6)
        except (TypeError, ValueError):
            v = np.full(6, np.nan)
        if not np.all(np.isfinite(v)):
            reasons.append('twist_nonfinite')
            self.counters['rejected_nonfinite'] += 1
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
        speed = math.hypot(*v[:3])          # inf for absurd inputs: the vector then scales to 0
        if speed > lim.max_linear_speed_mps:
            v[:3] = v[:3] * (lim.max_linear_speed_mps / speed) if math.isfinite(speed) else 0.0
            reasons.append('speed_limited')
            self.counters['speed_limited'] += 1
        if abs(v[5]) > lim.max_yaw_rate_rps:
            v[5] = math.copysign(lim.max_yaw_rate_rps, v[5])
            if 'speed_limited' not in reasons:
                reasons.append('speed_limited')
                self.counters['speed_limited'] += 1
        pos = np.asarray(tcp_pose[:3], np.float64)
        predicted = pos + v[:3] * lim.lookahead_s
        for i, axis in enumerate('xyz'):
            if (v[i] > 0 and predicted[i] > lim.workspace_high_m[i]) or \
                    (v[i] < 0 and predicted[i] < lim.workspace_low_m[i]):
                v[i] = 0.0
                reasons.append(f'workspace_{axis}')
                self.counters['workspace_zeroed'] += 1
        if v[5] != 0.0:
            if wrist_yaw is None:
                v[5] = 0.0
                reasons.append('wrist_unknown')
                self.counters['wrist_zeroed'] += 1
            else:
                rate = lim.wrist_yaw_sign * v[5]
                lo, hi = lim.wrist_yaw_limits_rad
                nxt = wrist_yaw + rate * lim.lookahead_s
                if (rate > 0 and nxt > hi) or (rate < 0 and nxt < lo):
                    v[5] = 0.0
                    reasons.append('wrist_yaw')
                    self.counters['wrist_zeroed'] += 1
        return tuple(float(x) for x in v)

    def stop_command(self) -> Tuple[Twist6, Optional[float]]:
        """What the watchdog sends while stale / e-stopped: zero twist, held gripper."""
        return ZERO_TWIST, self.held_gripper


def _is_number(x) -> bool:
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True
