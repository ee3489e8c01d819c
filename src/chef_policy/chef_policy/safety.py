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
5. Workspace box (spec §B.5: outward components *zeroed, not clipped*). The rules act on the box
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
6. Wrist yaw (d(right_j6)/dt = wrist_yaw_sign * yaw rate): an outward yaw rate is zeroed once
   right_j6 is at or past WRIST_YAW_LIMITS_RAD (+-pi/2) - the benchmark's rule. The limit is a task
   convention (the Sawyer's right_j6 turns +-4.7 rad), and linear motion alone turns right_j6 a
   little (~0.02 rad/s in chef_sim), so the benchmark lets it overshoot slightly (<= 0.1 rad seen).
   Strict containment is available: `wrist_lookahead_s` (zero if right_j6, heading out at the
   larger of its commanded and measured `wrist_rate`, would pass within that time),
   `wrist_margin_rad` (act on the range shrunk by this) and `wrist_return_rps` (past the shrunk
   range, by at most `wrist_return_band_rad` more, turn right_j6 back in at this rate); with
   0.2 s / 0.05 rad / 0.2 rad/s right_j6 never left +-pi/2 under fuzzing (test_safety_sim.py).
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
    wrist_lookahead_s: float = 0.0    # 0 = the benchmark's wrist rule (zero once past the limit)
    wrist_margin_rad: float = 0.0     # rule 6 acts on the yaw range shrunk by this
    wrist_return_rps: float = 0.0     # yaw that turns right_j6 back in when past the shrunk range
    wrist_return_band_rad: float = 0.2
    workspace_margin_m: float = 0.003     # rules act on the box shrunk by this (room to coast)
    lookahead_s: float = 4 * CONTROL_PERIOD_S
    drift_margin_m: float = 0.015
    drift_speed_mps: float = 0.002
    return_speed_mps: float = 0.01       # push back in when outside the shrunk box (0 = never)
    return_band_m: float = 0.01          # ... but only up to this far outside the real box
    stale_timeout_s: float = 2 * CONTROL_PERIOD_S
    gripper_range_rad: Tuple[float, float] = (GRIPPER_OPEN_POSITION_RAD, GRIPPER_CLOSED_POSITION_RAD)

    def __post_init__(self):
        if not 0 < self.max_linear_speed_mps <= MAX_LINEAR_SPEED_MPS:
            raise ValueError(f'max_linear_speed_mps must be in (0, {MAX_LINEAR_SPEED_MPS}]')
        if not 0 < self.max_yaw_rate_rps <= MAX_YAW_RATE_RPS:
            raise ValueError(f'max_yaw_rate_rps must be in (0, {MAX_YAW_RATE_RPS}]')
        if any(lo >= hi for lo, hi in zip(self.workspace_low_m, self.workspace_high_m)):
            raise ValueError('workspace_low_m must be below workspace_high_m on every axis')
        if self.lookahead_s < 0 or self.wrist_lookahead_s < 0 or self.stale_timeout_s <= 0:
            raise ValueError('lookahead_s must be >= 0 and stale_timeout_s > 0')
        if min(self.drift_margin_m, self.drift_speed_mps, self.return_speed_mps, self.return_band_m,
               self.workspace_margin_m, self.wrist_margin_rad, self.wrist_return_rps,
               self.wrist_return_band_rad) < 0:
            raise ValueError('margins, bands and speeds must be >= 0')
        if any(hi - lo <= 2 * self.workspace_margin_m
               for lo, hi in zip(self.workspace_low_m, self.workspace_high_m)):
            raise ValueError('workspace_margin_m leaves no room inside the box')

    @property
    def inner_low_m(self) -> np.ndarray:
        return np.asarray(self.workspace_low_m, np.float64) + self.workspace_margin_m

    @property
    def inner_high_m(self) -> np.ndarray:
        return np.asarray(self.workspace_high_m, np.float64) - self.workspace_margin_m
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
            'stopped_stale', 'speed_limited', 'workspace_zeroed', 'workspace_returned', 'drift_zeroed',
            'wrist_zeroed', 'wrist_returned', 'angular_xy_zeroed', 'gripper_clamped', 'gripper_held')


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
               obs_stamp: Optional[float], tcp_velocity: Optional[Sequence[float]] = None,
               wrist_rate: Optional[float] = None
               ) -> Tuple[Optional[Twist6], Optional[float], FilterStatus]:
        """Filter one command -> (twist or None, gripper target rad or None, status).

        twist: (vx, vy, vz, wx, wy, wz) in base_link, or None when only a gripper command arrived
        (the result's twist is then None too). gripper: target rad, or None when only a twist
        arrived. tcp_pose: latest TCP (pinch) position (x, y, z, ...) in base_link, m. wrist_yaw:
        latest right_j6 angle, rad. now / obs_stamp: current time and the stamp of the older of
        the two latest observations, s. tcp_velocity: measured TCP velocity (m/s, base_link) for
        the drift guard, None if unknown. wrist_rate: measured d(right_j6)/dt, rad/s, or None.
        The returned gripper is None only while no safe target
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
            out_twist = self._filter_twist(twist, tcp_pose, wrist_yaw, state, reasons, tcp_velocity,
                                           wrist_rate)
            if not reasons:
                self.counters['unchanged'] += 1
        return out_twist, out_gripper, FilterStatus(state, tuple(reasons))

    def _filter_twist(self, twist, tcp_pose, wrist_yaw, state, reasons, tcp_velocity=None,
                      wrist_rate=None) -> Twist6:
        lim = self.limits
        try:
            v = np.array(twist, dtype=np.float64).reshape(6)          # a copy: never mutate input
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
        vel = _finite3(tcp_velocity)
        self._workspace(v, pos, vel, reasons)
        speed = math.hypot(*v[:3])
        if speed > lim.max_linear_speed_mps:          # a return component may add a little
            v[:3] *= lim.max_linear_speed_mps / speed
        if v[5] != 0.0 and vel is not None and self._sliding_out_sideways(pos, vel):
            v[5] = 0.0
            reasons.append('workspace_yaw_band')
            self.counters['drift_zeroed'] += 1
        self._wrist(v, wrist_yaw, wrist_rate, reasons)
        return tuple(float(x) for x in v)

    def _wrist(self, v: np.ndarray, j6: Optional[float], j6_rate: Optional[float], reasons) -> None:
        """Rule 6 on the yaw range shrunk by wrist_margin_rad; edits v[5] in place."""
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
        """Rule 5 on the box shrunk by workspace_margin_m (`lo`, `hi`); edits v in place."""
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
