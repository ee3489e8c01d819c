"""SafetyFilter core: every rule on its own, and fuzzed commands never produce unsafe output."""

import math

import numpy as np
import pytest

from chef_contract.spec import (
    CONTROL_PERIOD_S, MAX_LINEAR_SPEED_MPS, WORKSPACE_HIGH_M, WORKSPACE_LOW_M,
)
from chef_policy.safety import NOMINAL_TCP_OFFSET_M, REJECTIONS, SafetyFilter, SafetyLimits

CENTRE = (0.60, 0.0, 0.17)
NOW = 100.0
# The speed cap without the arm's tracking allowances: |v + w x r| <= 0.07 m/s (what the workspace
# tests below reason with).
EXACT_ARM = dict(tracking_margin=0.0, yaw_coupling_mps_per_rps=0.0)


def run(f, twist, gripper=None, tcp=CENTRE, yaw=0.0, now=NOW, obs=NOW):
    return f.filter(twist, gripper, tcp, yaw, now, obs)


def test_input_command_is_never_modified():
    cmd = np.array([0.5, 0.0, 0.0, 0.1, 0.0, 3.0])
    SafetyFilter().filter(cmd, None, CENTRE, 0.0, NOW, NOW)
    assert cmd.tolist() == [0.5, 0.0, 0.0, 0.1, 0.0, 3.0]


def test_unchanged_command_passes_through():
    f = SafetyFilter()
    tw, g, st = run(f, (0.01, -0.02, 0.03, 0.0, 0.0, 0.5), 0.8)
    assert tw == (0.01, -0.02, 0.03, 0.0, 0.0, 0.5) and g == 0.8
    assert st.state == 'ok' and not st.changed


def test_velocity_limits_scale_the_linear_norm_and_clip_yaw():
    f = SafetyFilter(SafetyLimits(**EXACT_ARM))
    tw, _, st = run(f, (0.1, 0.1, 0.0, 0.3, -0.2, -3.0))
    assert math.isclose(np.linalg.norm(tw[:3]), MAX_LINEAR_SPEED_MPS)
    assert math.isclose(tw[0], tw[1])                        # direction kept (norm scaling, X1)
    assert tw[3] == tw[4] == 0.0 and tw[5] == -1.0
    assert {'speed_limited', 'angular_xy_zeroed'} <= set(st.reasons)


def test_tcp_point_speed_counts_yaw_about_the_wrist():
    """The twist acts at the wrist; the TCP moves at v + w x r. With the TCP 5 cm off the yaw
    axis, 1 rad/s adds 0.05 m/s: a command with it is scaled so the TCP point stays at 0.07 m/s,
    one against it is not."""
    f = SafetyFilter(SafetyLimits(**EXACT_ARM))
    r = (0.05, 0.0, -0.2)                                    # w x r = (0, 0.05, 0) for yaw 1 rad/s
    tw, _, st = f.filter((0.0, 0.07, 0.0, 0, 0, 1.0), None, CENTRE, 0.0, NOW, NOW, tcp_offset=r)
    assert math.isclose(tw[1], 0.02) and tw[5] == 1.0 and 'speed_limited' in st.reasons
    assert math.isclose(np.linalg.norm(f.tcp_velocity(tw, r)), MAX_LINEAR_SPEED_MPS)
    tw, _, st = f.filter((0.0, -0.07, 0.0, 0, 0, 1.0), None, CENTRE, 0.0, NOW, NOW, tcp_offset=r)
    assert tw[1] == -0.07 and not st.changed                 # TCP at 0.02 m/s: untouched
    tw, _, _ = f.filter((0.05, 0.05, 0.0, 0, 0, 1.0), None, CENTRE, 0.0, NOW, NOW, tcp_offset=r)
    assert np.linalg.norm(f.tcp_velocity(tw, r)) <= MAX_LINEAR_SPEED_MPS + 1e-12
    assert math.isclose(tw[0], tw[1])                        # direction of the linear part kept
    # the nominal offset (gripper pointing down) is on the yaw axis: yaw moves the TCP not at all
    assert np.allclose(f.tcp_velocity((0.07, 0, 0, 0, 0, 1.0), NOMINAL_TCP_OFFSET_M), (0.07, 0, 0))
    # a nonsense offset (a lost wrist pose) falls back to the nominal one
    tw, _, _ = f.filter((0.0, 0.07, 0.0, 0, 0, 1.0), None, CENTRE, 0.0, NOW, NOW,
                        tcp_offset=(math.nan, 0.0, 0.0))
    assert tw[1] == 0.07


def test_tcp_speed_budget_covers_the_arms_tracking_and_yaw_coupling():
    """Defaults: the arm may overshoot 10 % and couples 0.025 m/s per rad/s of yaw into the TCP,
    while the yaw is in effect and coupling_hold_s after: the linear cap shrinks accordingly."""
    f = SafetyFilter()
    lim = f.limits
    straight = MAX_LINEAR_SPEED_MPS / (1 + lim.tracking_margin)
    with_yaw = (MAX_LINEAR_SPEED_MPS - lim.yaw_coupling_mps_per_rps) / (1 + lim.tracking_margin)
    tw, _, _ = run(f, (0.07, 0.0, 0.0, 0, 0, 0), now=NOW, obs=NOW)
    assert math.isclose(tw[0], straight)
    tw, _, _ = run(f, (0.05, 0.05, 0.0, 0, 0, -1.0), now=NOW + 0.05, obs=NOW + 0.05)
    assert math.isclose(np.linalg.norm(tw[:3]), with_yaw) and tw[5] == -1.0
    assert (1 + lim.tracking_margin) * np.linalg.norm(tw[:3]) + lim.yaw_coupling_mps_per_rps * 1.0 \
        <= MAX_LINEAR_SPEED_MPS + 1e-12
    tw, _, _ = run(f, (0.07, 0.0, 0.0, 0, 0, 0), now=NOW + 0.10, obs=NOW + 0.10)
    assert math.isclose(tw[0], with_yaw)                     # the yaw in effect until now still couples
    tw, _, _ = run(f, (0.07, 0.0, 0.0, 0, 0, 0), now=NOW + 0.19, obs=NOW + 0.19)
    assert math.isclose(tw[0], with_yaw)                     # ... for coupling_hold_s after it ended
    tw, _, _ = run(f, (0.07, 0.0, 0.0, 0, 0, 0), now=NOW + 0.21, obs=NOW + 0.21)
    assert math.isclose(tw[0], straight)                     # then the full budget again
    # a caller that passes no time (the same `now` every tick): the previous command's yaw counts
    f = SafetyFilter()
    run(f, (0.0, 0.0, 0.0, 0, 0, 1.0))
    assert math.isclose(run(f, (0.07, 0.0, 0.0, 0, 0, 0))[0][0], with_yaw)
    assert math.isclose(run(f, (0.07, 0.0, 0.0, 0, 0, 0))[0][0], straight)
    with pytest.raises(ValueError):
        SafetyLimits(yaw_coupling_mps_per_rps=0.07)          # would leave no linear speed at 1 rad/s


def test_workspace_faces_zero_outward_components_only():
    f = SafetyFilter(SafetyLimits(**EXACT_ARM))
    hi, lo = WORKSPACE_HIGH_M, WORKSPACE_LOW_M
    at_high_x = (hi[0] - 0.004, 0.0, 0.17)                  # 1 mm inside the 3 mm margin
    tw, _, st = run(f, (0.05, 0.02, -0.01, 0, 0, 0), tcp=at_high_x)
    assert tw[:3] == (0.0, 0.02, -0.01) and 'workspace_x' in st.reasons
    tw, _, _ = run(f, (-0.05, 0.0, 0.0, 0, 0, 0), tcp=at_high_x)
    assert tw[0] == -0.05                                   # back inside is always allowed
    in_margin = (hi[0] - 0.001, 0.0, 0.17)                  # in the margin: eased back in
    tw, _, st = run(f, (0.05, 0.02, -0.01, 0, 0, 0), tcp=in_margin)
    assert tw[:3] == (-0.01, 0.02, -0.01) and 'workspace_return_x' in st.reasons
    tw, _, _ = run(f, (-0.05, 0.0, 0.0, 0, 0, 0), tcp=in_margin)
    assert tw[0] == -0.05                                   # already coming back faster: kept
    below = (0.6, 0.0, lo[2] - 0.05)                        # far outside: may come back up
    tw, _, _ = run(f, (0.0, 0.0, 0.05, 0, 0, 0), tcp=below)
    assert tw[2] == 0.05
    tw, _, st = run(f, (0.0, 0.0, -0.01, 0, 0, 0), tcp=below)
    assert tw[2] == 0.0 and 'workspace_z' in st.reasons
    above = (0.6, 0.0, 0.40)                                # initial TCP may start above the box
    tw, _, _ = run(f, (0.0, 0.0, -0.05, 0, 0, 0), tcp=above)
    assert tw[2] == -0.05
    # lookahead 0.2 s at 0.07 m/s = 14 mm before the face of the box shrunk by 3 mm: 15 mm from
    # the real face is too close, 18 mm is fine; a slower command may come closer
    tw, _, _ = run(f, (0.0, 0.07, 0.0, 0, 0, 0), tcp=(0.6, hi[1] - 0.015, 0.17))
    assert tw[1] == 0.0
    tw, _, _ = run(f, (0.0, 0.07, 0.0, 0, 0, 0), tcp=(0.6, hi[1] - 0.018, 0.17))
    assert tw[1] == 0.07
    tw, _, _ = run(f, (0.0, 0.01, 0.0, 0, 0, 0), tcp=(0.6, hi[1] - 0.008, 0.17))
    assert tw[1] == 0.01
    benchmark_rule = SafetyFilter(SafetyLimits(lookahead_s=0.0, workspace_margin_m=0.0, **EXACT_ARM))
    tw, _, _ = run(benchmark_rule, (0.0, 0.07, 0.0, 0, 0, 0), tcp=(0.6, hi[1] - 0.003, 0.17))
    assert tw[1] == 0.07


def test_drift_guard_stops_uncommanded_outward_motion_near_a_face():
    f = SafetyFilter()
    hi = WORKSPACE_HIGH_M
    near = (0.6, hi[1] - 0.005, 0.17)
    cmd = (0.03, 0.0, 0.02, 0, 0, 0.8)               # nothing pushes +y ...
    out, _, st = f.filter(cmd, None, near, 0.0, NOW, NOW, tcp_velocity=(0.0, 0.02, 0.0))
    assert out == (0.0,) * 6 and 'workspace_drift_y' in st.reasons    # ... yet the TCP slides +y
    out, _, _ = f.filter((0.03, -0.02, 0.02, 0, 0, 0.8), None, near, 0.0, NOW, NOW,
                         tcp_velocity=(0.0, 0.02, 0.0))
    assert out[1] == -0.02                           # moving back in is always kept
    out, _, _ = f.filter(cmd, None, near, 0.0, NOW, NOW, tcp_velocity=(0.0, -0.02, 0.0))
    assert out == (0.03, 0.0, 0.02, 0.0, 0.0, 0.8)   # sliding inwards: untouched
    far = (0.6, 0.0, 0.17)
    out, _, _ = f.filter(cmd, None, far, 0.0, NOW, NOW, tcp_velocity=(0.0, 0.02, 0.0))
    assert out == (0.03, 0.0, 0.02, 0.0, 0.0, 0.8)   # far from the faces: untouched
    fast = (0.6, hi[1] - 0.03, 0.17)                 # 30 mm away but heading out at 0.2 m/s
    out, _, st = f.filter(cmd, None, fast, 0.0, NOW, NOW, tcp_velocity=(0.0, 0.2, 0.0))
    assert out == (0.0,) * 6
    # slow creep in the band of an x/y face: yaw alone is zeroed
    out, _, st = f.filter(cmd, None, near, 0.0, NOW, NOW, tcp_velocity=(0.0, 0.001, 0.0))
    assert out == (0.03, 0.0, 0.02, 0.0, 0.0, 0.0) and 'workspace_yaw_band' in st.reasons


def test_wrist_yaw_limit():
    f = SafetyFilter()                 # benchmark rule: d(j6)/dt = -yaw; zero once at/past the limit
    tw, _, st = run(f, (0, 0, 0, 0, 0, -1.0), yaw=math.pi / 2 + 0.01)
    assert tw[5] == 0.0 and 'wrist_yaw' in st.reasons
    tw, _, _ = run(f, (0, 0, 0, 0, 0, 1.0), yaw=math.pi / 2 + 0.01)
    assert tw[5] == 1.0                                     # turning back is free
    tw, _, _ = run(f, (0, 0, 0, 0, 0, -1.0), yaw=math.pi / 2 - 0.01)
    assert tw[5] == -1.0                                    # not yet at the limit
    tw, _, st = run(f, (0, 0, 0, 0, 0, 1.0), yaw=None)
    assert tw[5] == 0.0 and 'wrist_unknown' in st.reasons
    strict = SafetyFilter(SafetyLimits(wrist_lookahead_s=0.2, wrist_margin_rad=0.05,
                                       wrist_return_rps=0.2))   # rules on +-(pi/2 - 0.05)
    tw, _, st = run(strict, (0, 0, 0, 0, 0, -1.0), yaw=math.pi / 2 - 0.1)
    assert tw[5] == 0.0 and 'wrist_yaw' in st.reasons      # would pass the limit within 0.2 s
    tw, _, st = run(strict, (0, 0, 0, 0, 0, -0.3), yaw=math.pi / 2 - 0.01)
    assert tw[5] == 0.2 and 'wrist_return' in st.reasons   # past the margin: turned back in
    tw, _, _ = run(strict, (0, 0, 0, 0, 0, 0.0), yaw=-math.pi / 2 + 0.01)
    assert tw[5] == -0.2
    tw, _, _ = run(strict, (0, 0, 0, 0, 0, -0.3), yaw=math.pi / 2 - 0.3)
    assert tw[5] == -0.3
    # measured j6 motion counts: moving out at 1 rad/s from 0.25 rad inside -> zero the push
    out, _, _ = strict.filter((0, 0, 0, 0, 0, -0.1), None, CENTRE, math.pi / 2 - 0.25, NOW, NOW,
                              wrist_rate=1.0)
    assert out[5] == 0.0


def test_stale_observation_zeroes_within_two_periods_and_holds_gripper():
    f = SafetyFilter()
    run(f, (0.01, 0, 0, 0, 0, 0), 0.8, obs=NOW)
    period = CONTROL_PERIOD_S
    tw, g, st = run(f, (0.01, 0, 0, 0, 0, 0), 0.0, obs=NOW - 2 * period + 1e-6)
    assert st.state == 'ok' and tw[0] == 0.01 and g == 0.0
    tw, g, st = run(f, (0.01, 0, 0, 0, 0, 0.5), 0.8, obs=NOW - 2 * period - 1e-6)
    assert st.state == 'stale' and tw == (0.0,) * 6 and g == 0.0       # held, not the new 0.8
    tw, g, st = run(f, (0.01, 0, 0, 0, 0, 0), 0.8, obs=None)
    assert st.state == 'stale' and tw == (0.0,) * 6
    tw, _, st = run(f, (0.01, 0, 0, 0, 0, 0), tcp=None)
    assert tw == (0.0,) * 6 and 'stale' in st.reasons
    tw, _, st = run(f, (0.01, 0, 0, 0, 0, 0), tcp=(math.nan, 0.0, 0.2))
    assert tw == (0.0,) * 6
    # a stamp far in the future (clock mismatch) is not fresh either
    assert run(f, (0.01, 0, 0, 0, 0, 0), obs=NOW + 1.0)[2].state == 'stale'


def test_estop_latches_until_reset():
    f = SafetyFilter()
    run(f, None, 0.8)
    f.trigger_estop('operator')
    for _ in range(3):
        tw, g, st = run(f, (0.05, 0, 0, 0, 0, 0), 0.0)
        assert st.state == 'estop' and tw == (0.0,) * 6 and g == 0.8
    f.reset_estop()
    tw, g, st = run(f, (0.05, 0, 0, 0, 0, 0), 0.0)
    assert st.state == 'ok' and tw[0] == 0.05 and g == 0.0


def test_gripper_clamp_and_hold():
    f = SafetyFilter()
    assert run(f, None, None)[1] is None                 # nothing to hold yet
    assert run(f, None, 5.0)[1] == 0.8
    assert run(f, None, -1.0)[1] == 0.0
    assert run(f, None, math.nan)[1] == 0.0              # held
    assert run(f, None, 'close')[1] == 0.0


def test_command_stamps_older_than_the_stale_bound_or_ahead_of_now_are_rejected():
    """Issue 16.1: a command's own stamp is judged against now, as the observations' are."""
    f = SafetyFilter()
    lim = f.limits
    run(f, None, 0.8)
    cases = {NOW - 3600.0: 'command_stale', 0.0: 'command_stale', NOW + 3600.0: 'command_future',
             NOW - lim.stale_timeout_s - 1e-3: 'command_stale',
             NOW + lim.future_tolerance_s + 1e-3: 'command_future', math.nan: 'command_stale'}
    for stamp, reason in cases.items():
        tw, g, st = f.filter((0.03, 0, 0, 0, 0, 0.5), 0.0, CENTRE, 0.0, NOW, NOW, cmd_stamp=stamp)
        assert tw == (0.0,) * 6 and g == 0.8, stamp           # zero twist, gripper held
        assert st.rejection == reason and reason in REJECTIONS
    assert f.counters['rejected_stamp'] == 2 * len(cases)     # the twist and the gripper each
    for stamp in (NOW, NOW - lim.stale_timeout_s + 1e-3, NOW + lim.future_tolerance_s - 1e-3):
        tw, g, st = f.filter((0.03, 0, 0, 0, 0, 0.5), 0.0, CENTRE, 0.0, NOW, NOW, cmd_stamp=stamp)
        assert tw == (0.03, 0, 0, 0, 0, 0.5) and g == 0.0 and st.rejection is None
    tw, _, _ = f.filter((0.03, 0, 0, 0, 0, 0), None, CENTRE, 0.0, NOW, NOW, cmd_stamp=None)
    assert tw[0] == 0.03                                      # unstamped (gripper without a tag)


def test_gripper_commands_must_hold_exactly_one_value():
    """Issue 16.4: arrays of length 0, 2 or 7 are refused (the bridge wants exactly one)."""
    f = SafetyFilter()
    assert run(f, None, [0.8])[1] == 0.8
    for bad in ([], [0.0, 0.8], [0.0] * 7, np.zeros(2)):
        _, g, st = run(f, None, bad)
        assert g == 0.8 and st.rejection == 'gripper_malformed', bad
    assert f.counters['rejected_malformed'] == 4
    assert run(f, None, np.array([0.0]))[1] == 0.0            # a one-element array is fine
    assert run(f, None, np.array(0.8))[1] == 0.8              # so is a number, of any kind
    assert run(f, None, [math.nan])[2].rejection == 'gripper_nonfinite'


def test_command_watchdog_notices_silence():
    f = SafetyFilter()
    assert f.commands_silent(NOW)                            # nothing ever commanded
    run(f, (0.01, 0, 0, 0, 0, 0), now=NOW)
    assert not f.commands_silent(NOW + f.limits.command_timeout_s - 1e-3)
    assert f.commands_silent(NOW + f.limits.command_timeout_s + 1e-3)
    assert f.limits.command_timeout_s < 2 * CONTROL_PERIOD_S  # zero within 2 periods of silence
    run(f, None, 0.8, now=NOW + 1.0)                         # a gripper command is not a twist
    assert f.commands_silent(NOW + 1.0)
    assert f.commands_silent(NOW - 1.0)                      # the clock went back: silent


def test_fuzzed_commands_never_produce_unsafe_output():
    rng = np.random.default_rng(0)
    f = SafetyFilter()
    lim = f.limits
    specials = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e9, 0.0, 1e-320]
    stamps = [0.0, NOW - 3600.0, NOW + 3600.0, NOW - 0.5, NOW + 0.5, math.nan]
    for i in range(10000):
        now = NOW + i * 1e-3                                  # 1 kHz
        tw = rng.normal(scale=rng.choice([0.01, 0.1, 10.0]), size=6)
        if rng.random() < 0.3:
            tw[rng.integers(6)] = rng.choice(specials)
        g = rng.choice([rng.normal(), math.nan, math.inf, 0.8, 0.0, 1e9])
        if rng.random() < 0.2:
            g = list(rng.normal(size=int(rng.choice([0, 1, 2, 7]))))
        stamp = now if rng.random() < 0.7 else float(rng.choice(stamps))
        tcp = rng.uniform(np.array(WORKSPACE_LOW_M) - 0.1, np.array(WORKSPACE_HIGH_M) + 0.1)
        r = rng.normal(NOMINAL_TCP_OFFSET_M, 0.05)
        yaw = rng.uniform(-2, 2)
        out, gout, st = f.filter(tw, g, tcp, yaw, now, now - rng.uniform(0, 0.2), cmd_stamp=stamp,
                                 tcp_offset=r)
        assert np.all(np.isfinite(out)) and (gout is None or math.isfinite(gout))
        assert np.linalg.norm(out[:3]) <= MAX_LINEAR_SPEED_MPS + 1e-12 and abs(out[5]) <= 1.0
        assert out[3] == out[4] == 0.0
        tcp_speed = np.linalg.norm(f.tcp_velocity(out, r))
        assert (1 + lim.tracking_margin) * tcp_speed + lim.yaw_coupling_mps_per_rps * abs(out[5]) \
            <= MAX_LINEAR_SPEED_MPS + 1e-12
        if gout is not None:
            assert 0.0 <= gout <= 0.8
        if st.state != 'ok' or f.command_stamp_problem(now, stamp) or not np.all(np.isfinite(tw)):
            assert out == (0.0,) * 6
    c = f.counters
    assert c['rejected_nonfinite'] > 1000 and c['rejected_stamp'] > 1000
    assert c['rejected_malformed'] > 300 and c['speed_limited'] > 1000


def test_kinematic_fuzz_keeps_tcp_inside_the_box():
    """Integrate the filtered twist for 10,000 ticks of random commands: the TCP never leaves."""
    rng = np.random.default_rng(1)
    f = SafetyFilter(SafetyLimits(wrist_lookahead_s=0.2, wrist_margin_rad=0.05, wrist_return_rps=0.2))
    lo, hi = np.array(WORKSPACE_LOW_M), np.array(WORKSPACE_HIGH_M)
    pos = rng.uniform(lo, hi)
    yaw = 0.0
    vel = np.zeros(3)
    out_yaw = 0.0
    for i in range(10000):
        cmd = rng.uniform(-0.2, 0.2, 6) if rng.random() < 0.5 else np.sign(rng.normal(size=6)) * 0.07
        out, _, _ = f.filter(cmd, None, pos, yaw, NOW, NOW, tcp_velocity=vel, wrist_rate=-out_yaw)
        vel = np.array(out[:3])
        pos = pos + vel * CONTROL_PERIOD_S
        out_yaw = out[5]
        yaw = yaw - out[5] * CONTROL_PERIOD_S
        assert np.all(pos >= lo - 1e-12) and np.all(pos <= hi + 1e-12), (i, pos)
        assert -math.pi / 2 - 1e-12 <= yaw <= math.pi / 2 + 1e-12


def test_limits_cannot_exceed_the_benchmark():
    with pytest.raises(ValueError):
        SafetyLimits(max_linear_speed_mps=0.5)
    with pytest.raises(ValueError):
        SafetyLimits(workspace_low_m=(1, 0, 0), workspace_high_m=(0, 1, 1))


def test_limits_file_is_the_one_source_for_ros_free_filters(tmp_path):
    """load_limits reads the SafetyLimits fields of config/safety_filter.yaml (what the nodes load)
    into one object; the node's own keys stay the node's; a changed value comes through."""
    from chef_policy.safety import SAFETY_NODE_KEY, load_limits
    assert load_limits() == SafetyLimits()
    f = tmp_path / 'safety_filter.yaml'
    f.write_text(f"{SAFETY_NODE_KEY}:\n  ros__parameters:\n    max_linear_speed_mps: 0.05\n"
                 "    watchdog_period_s: 0.02\n")
    assert load_limits(f) == SafetyLimits(max_linear_speed_mps=0.05)
    f.write_text(f"{SAFETY_NODE_KEY}:\n  ros__parameters:\n    max_linear_speed_mps: 0.5\n")
    with pytest.raises(ValueError, match='max_linear_speed_mps'):
        load_limits(f)
