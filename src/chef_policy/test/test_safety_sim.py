"""10,000 random / fuzzed commands through SafetyFilter into the MuJoCo cell: the TCP never leaves the
workspace box; past +-pi/2 right_j6 is never commanded further out (the benchmark's wrist rule; it
may coast a little past, ~0.18 rad at most here), and with the strict wrist settings it never
leaves +-pi/2 at all. The env's own zeroing is switched off
(SimConfig(enforce_workspace=False, enforce_wrist_limit=False)), so the filter alone keeps them in.

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
    CONTROL_PERIOD_S, WORKSPACE_HIGH_M, WORKSPACE_LOW_M, WRIST_YAW_LIMITS_RAD,
)
from chef_policy.safety import SafetyFilter, SafetyLimits

sim_env = pytest.importorskip('chef_sim.env')
LO, HI = np.array(WORKSPACE_LOW_M), np.array(WORKSPACE_HIGH_M)
CHUNKS = 5
COMMANDS_PER_CHUNK = 2000


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


def run_fuzz(env, filt: SafetyFilter, commands: int, seed: int, strict_wrist: bool = False):
    """Drive the cell with `commands` fuzzed commands -> (violations, worst box excess m, ticks
    inside, worst right_j6 excess rad). After the TCP first entered the box, a violation is: the
    TCP outside the box; a yaw command that turns right_j6 further out while it is past +-pi/2;
    with `strict_wrist`, right_j6 past +-pi/2 at all."""
    rng = np.random.default_rng(seed)
    violations, worst, inside_ticks, done, worst_wrist = 0, 0.0, 0, 0, 0.0
    need_reset, cmd, hold = True, None, 0
    while done < commands:
        if need_reset:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
            entered, prev_p, prev_j6, need_reset = False, None, None, False
        p = np.asarray(obs['sawyer/pinch/pose'][0][:3], np.float64)
        j6 = float(obs['sawyer/joints/angle'][0][6])
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
                                      0.0, 0.0, vel, j6_rate)
        action = from_command(out[:3], out[5], gripper if gripper is not None else 0.0)
        pushes_wrist_out = (j6 >= WRIST_YAW_LIMITS_RAD[1] and -out[5] > 0) or \
            (j6 <= WRIST_YAW_LIMITS_RAD[0] and -out[5] < 0)          # d(j6)/dt = -yaw
        n_bad = env.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        obs, _, _, truncated, _ = env.step(action)
        assert env.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == n_bad, 'physics diverged'
        need_reset = truncated
        p2 = np.asarray(obs['sawyer/pinch/pose'][0][:3], np.float64)
        j6_2 = float(obs['sawyer/joints/angle'][0][6])
        inside = bool(np.all(p2 >= LO) and np.all(p2 <= HI))
        if entered:
            excess = float(np.max(np.maximum(LO - p2, 0) + np.maximum(p2 - HI, 0)))
            wrist_excess = max(WRIST_YAW_LIMITS_RAD[0] - j6_2, j6_2 - WRIST_YAW_LIMITS_RAD[1], 0.0)
            worst_wrist = max(worst_wrist, wrist_excess)
            if excess > 0 or (entered and pushes_wrist_out) or (strict_wrist and wrist_excess > 0):
                violations += 1
                worst = max(worst, excess)
            inside_ticks += inside
        entered = entered or inside
    return violations, worst, inside_ticks, worst_wrist


@pytest.mark.parametrize('chunk', range(CHUNKS))
def test_fuzzed_commands_never_leave_the_workspace(env, chunk):
    filt = SafetyFilter()
    violations, worst, inside, wrist = run_fuzz(env, filt, COMMANDS_PER_CHUNK, seed=100 + chunk)
    assert violations == 0, f'{violations} ticks outside (box {worst * 1000:.1f} mm, wrist {wrist:.3f} rad)'
    assert inside >= COMMANDS_PER_CHUNK - 1
    c = filt.counters
    # the fuzz really pushed against every rule
    assert c['workspace_zeroed'] > 50 and c['drift_zeroed'] > 10 and c['rejected_nonfinite'] > 20
    assert c['wrist_zeroed'] > 10 and c['speed_limited'] > 100


def test_strict_wrist_settings_keep_right_j6_inside(env):
    strict = SafetyFilter(SafetyLimits(wrist_lookahead_s=0.2, wrist_margin_rad=0.05, wrist_return_rps=0.2))
    violations, worst, _, wrist = run_fuzz(env, strict, 1000, seed=104, strict_wrist=True)
    assert violations == 0, f'{violations} ticks outside (box {worst * 1000:.1f} mm, wrist {wrist:.3f} rad)'
    assert strict.counters['wrist_zeroed'] > 10


def test_the_benchmark_rule_alone_is_not_enough(env):
    """Same fuzz with only the benchmark's rule (zero once outside): the TCP does leave the box,
    so the fuzz is strong enough to catch a weaker filter."""
    benchmark = SafetyFilter(SafetyLimits(lookahead_s=0.0, workspace_margin_m=0.0, drift_margin_m=0.0,
                                          drift_speed_mps=1e9, return_speed_mps=0.0))
    violations, worst, _, _ = run_fuzz(env, benchmark, 1500, seed=7)
    assert violations > 0 and worst > 0.002
