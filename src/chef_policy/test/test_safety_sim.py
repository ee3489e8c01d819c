"""10,000 random / fuzzed commands through SafetyFilter into the MuJoCo cell: the TCP never leaves the
workspace box and never moves faster than the cap (+2 %, measured from consecutive pinch poses);
past +-pi/2 right_j6 is never commanded further out (the benchmark's wrist rule; it may coast a
little past, ~0.18 rad at most here), and with the strict wrist settings it never leaves +-pi/2 at
all. The env's own zeroing is switched off
(SimConfig(enforce_workspace=False, enforce_wrist_limit=False)), so the filter alone keeps them in.
Issue 16.3's case (a norm-capped diagonal with +-1 rad/s yaw) stays within the cap through the
filter, and exceeds it with the benchmark's rule (cap on the commanded wrist twist only).

Runtime: each chunk takes ~10-25 s on the 2-core machine (2,000 physics ticks), five chunks make
the 10,000 commands; the physics step is 5 ms (10 substeps per tick) instead of the faithful 0.5 ms:
the arm's velocity tracking (what the rules fight) is unchanged, the run 10x cheaper.
"""

import math

import mujoco
import numpy as np
import pytest

from chef_contract.action import from_command
from chef_contract.spec import (
    CONTROL_PERIOD_S, MAX_LINEAR_SPEED_MPS, WORKSPACE_HIGH_M, WORKSPACE_LOW_M, WRIST_YAW_LIMITS_RAD,
)
from chef_policy.safety import SafetyFilter, SafetyLimits

sim_env = pytest.importorskip('chef_sim.env')
LO, HI = np.array(WORKSPACE_LOW_M), np.array(WORKSPACE_HIGH_M)
CHUNKS = 5
COMMANDS_PER_CHUNK = 2000
SPEED_TOLERANCE = 1.02          # measured TCP speed may exceed the cap by 2 % (the done criterion)


@pytest.fixture(scope='module')
def env():
    e = sim_env.RgbStackingEnv(sim_env.SimConfig(
        render_images=False, preset='fast', physics_timestep_s=0.005,
        enforce_workspace=False, enforce_wrist_limit=False))
    yield e
    e.close()


def fuzz_command(rng) -> np.ndarray:
    """Random twist (vx, vy, vz, wx, wy, wz): wild, saturated, or poisoned with NaN/inf."""
    kind = rng.random()
    if kind < 0.45:
        cmd = np.concatenate([rng.uniform(-0.2, 0.2, 3), rng.uniform(-0.5, 0.5, 2), rng.uniform(-2, 2, 1)])
    elif kind < 0.9:
        cmd = np.sign(rng.normal(size=6)) * np.array([0.07, 0.07, 0.07, 0.0, 0.0, 1.0])
    else:
        cmd = rng.normal(0, 0.05, 6)
        cmd[rng.integers(6)] = rng.choice([math.nan, math.inf, -math.inf, 1e9])
    return cmd


def observe(obs):
    """(pinch position m, right_j6 rad, TCP - wrist offset m) of an observation."""
    p = np.asarray(obs['sawyer/pinch/pose'][0][:3], np.float64)
    wrist = np.asarray(obs['sawyer/tcp/pose'][0][:3], np.float64)
    return p, float(obs['sawyer/joints/angle'][0][6]), p - wrist


def run_fuzz(env, filt: SafetyFilter, commands: int, seed: int, strict_wrist: bool = False):
    """Drive the cell with `commands` fuzzed commands -> (violations, worst box excess m, ticks
    inside, worst right_j6 excess rad, fastest TCP m/s). After the TCP first entered the box, a
    violation is: the TCP outside the box; the TCP faster than the cap (+2 %); a yaw command that
    turns right_j6 further out while it is past +-pi/2; with `strict_wrist`, right_j6 past +-pi/2."""
    rng = np.random.default_rng(seed)
    violations, worst, inside_ticks, done, worst_wrist, fastest = 0, 0.0, 0, 0, 0.0, 0.0
    need_reset, cmd, hold, now = True, None, 0, 0.0
    while done < commands:
        if need_reset:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
            entered, prev_p, prev_j6, need_reset = False, None, None, False
        p, j6, offset = observe(obs)
        vel = (p - prev_p) / CONTROL_PERIOD_S if prev_p is not None else None
        j6_rate = (j6 - prev_j6) / CONTROL_PERIOD_S if prev_p is not None else None
        prev_p, prev_j6 = p, j6
        if not entered:      # episodes may start above the box: come in first (inward is allowed)
            toward = np.clip(((LO + HI) / 2 - p) * 5, -0.07, 0.07)
            twist = np.concatenate([toward, [0, 0, 0]])
        else:
            if hold <= 0:
                cmd, hold = fuzz_command(rng), int(rng.integers(1, 25))
            hold -= 1
            twist = cmd
            done += 1
        out, gripper, _ = filt.filter(twist, float(rng.choice([0.0, 0.8, math.nan])), p, j6,
                                      now, now, vel, j6_rate, cmd_stamp=now, tcp_offset=offset)
        now += CONTROL_PERIOD_S
        action = from_command(out[:3], out[5], gripper if gripper is not None else 0.0)
        pushes_wrist_out = (j6 >= WRIST_YAW_LIMITS_RAD[1] and -out[5] > 0) or \
            (j6 <= WRIST_YAW_LIMITS_RAD[0] and -out[5] < 0)          # d(j6)/dt = -yaw
        n_bad = env.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        obs, _, _, truncated, _ = env.step(action)
        assert env.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == n_bad, 'physics diverged'
        need_reset = truncated
        p2, j6_2, _ = observe(obs)
        inside = bool(np.all(p2 >= LO) and np.all(p2 <= HI))
        if entered:
            excess = float(np.max(np.maximum(LO - p2, 0) + np.maximum(p2 - HI, 0)))
            wrist_excess = max(WRIST_YAW_LIMITS_RAD[0] - j6_2, j6_2 - WRIST_YAW_LIMITS_RAD[1], 0.0)
            worst_wrist = max(worst_wrist, wrist_excess)
            speed = float(np.linalg.norm(p2 - p)) / CONTROL_PERIOD_S
            fastest = max(fastest, speed)
            too_fast = speed > MAX_LINEAR_SPEED_MPS * SPEED_TOLERANCE
            if excess > 0 or pushes_wrist_out or too_fast or (strict_wrist and wrist_excess > 0):
                violations += 1
                worst = max(worst, excess)
            inside_ticks += inside
        entered = entered or inside
    return violations, worst, inside_ticks, worst_wrist, fastest


@pytest.mark.parametrize('chunk', range(CHUNKS))
def test_fuzzed_commands_never_leave_the_workspace(env, chunk):
    filt = SafetyFilter()
    violations, worst, inside, wrist, fastest = run_fuzz(env, filt, COMMANDS_PER_CHUNK, seed=100 + chunk)
    assert violations == 0, (f'{violations} violations (box {worst * 1000:.1f} mm, wrist {wrist:.3f} rad, '
                             f'TCP {fastest:.4f} m/s)')
    assert fastest > 0.8 * MAX_LINEAR_SPEED_MPS          # the arm did move fast
    assert inside >= COMMANDS_PER_CHUNK - 1
    c = filt.counters
    # the fuzz really pushed against every rule
    assert c['workspace_zeroed'] > 50 and c['drift_zeroed'] > 10 and c['rejected_nonfinite'] > 20
    assert c['wrist_zeroed'] > 10 and c['speed_limited'] > 100


def test_strict_wrist_settings_keep_right_j6_inside(env):
    strict = SafetyFilter(SafetyLimits(wrist_lookahead_s=0.2, wrist_margin_rad=0.05, wrist_return_rps=0.2))
    violations, worst, _, wrist, fastest = run_fuzz(env, strict, 1000, seed=104, strict_wrist=True)
    assert violations == 0, (f'{violations} violations (box {worst * 1000:.1f} mm, wrist {wrist:.3f} rad, '
                             f'TCP {fastest:.4f} m/s)')
    assert strict.counters['wrist_zeroed'] > 10


def test_the_benchmark_rule_alone_is_not_enough(env):
    """Same fuzz with only the benchmark's rule (zero once outside): the TCP does leave the box,
    so the fuzz is strong enough to catch a weaker filter."""
    benchmark = SafetyFilter(SafetyLimits(lookahead_s=0.0, workspace_margin_m=0.0, drift_margin_m=0.0,
                                          drift_speed_mps=1e9, return_speed_mps=0.0))
    violations, worst, _, _, _ = run_fuzz(env, benchmark, 1500, seed=7)
    assert violations > 0 and worst > 0.002


def diagonal_with_yaw(env, filt: SafetyFilter, seed: int) -> np.ndarray:
    """Issue 16.3's case: norm-capped diagonal commands (0.07 m/s) with +-1 rad/s yaw, each held
    12 ticks, from the box centre -> measured TCP speeds (m/s) of every tick."""
    obs, _ = env.reset(seed=seed)
    centre = (LO + HI) / 2
    for _ in range(80):                                 # to the centre of the box, slowly
        p, _, _ = observe(obs)
        obs, *_ = env.step(from_command(np.clip((centre - p) * 3, -0.07, 0.07), 0.0, 0.0))
    speeds, now = [], 0.0
    d = 0.07 / math.sqrt(2)
    for sx, sy, yaw in ((1, 1, 1.0), (-1, -1, -1.0), (1, -1, -1.0), (-1, 1, 1.0), (1, 1, -1.0),
                        (-1, -1, 1.0)):
        for _ in range(12):
            p, j6, offset = observe(obs)
            out, _, _ = filt.filter((sx * d, sy * d, 0.0, 0.0, 0.0, yaw), None, p, j6, now, now,
                                    cmd_stamp=now, tcp_offset=offset)
            obs, *_ = env.step(from_command(out[:3], out[5], 0.0))
            now += CONTROL_PERIOD_S
            speeds.append(float(np.linalg.norm(observe(obs)[0] - p)) / CONTROL_PERIOD_S)
    return np.array(speeds)


def test_diagonal_with_yaw_keeps_the_tcp_speed_cap(env):
    """Through the filter the TCP stays within the cap (+2 %) and still moves at >= 75 % of it;
    with the commanded wrist twist merely norm-capped (the benchmark) it does not (0.082 m/s in
    the issue)."""
    speeds = diagonal_with_yaw(env, SafetyFilter(), seed=3)
    assert speeds.max() <= MAX_LINEAR_SPEED_MPS * SPEED_TOLERANCE, speeds.max()
    assert speeds.max() >= 0.75 * MAX_LINEAR_SPEED_MPS
    wrist_cap_only = SafetyFilter(SafetyLimits(tracking_margin=0.0, yaw_coupling_mps_per_rps=0.0))
    speeds = diagonal_with_yaw(env, wrist_cap_only, seed=3)
    assert speeds.max() > MAX_LINEAR_SPEED_MPS * SPEED_TOLERANCE, speeds.max()
