"""The scripted privileged expert, driven by PolicyRunner exactly as the policy node drives it, with
every command passing through the SafetyFilter, stacks red on blue in the MuJoCo cell."""

import numpy as np
import pytest

from chef_contract.action import from_command, to_command
from chef_contract.spec import CONTROL_PERIOD_S, EPISODE_STEPS
from chef_policy.runner import PolicyRunner, ScriptedPolicy
from chef_policy.safety import SafetyFilter

sim_env = pytest.importorskip('chef_sim.env')


@pytest.fixture(scope='module')
def env():
    e = sim_env.RgbStackingEnv(sim_env.SimConfig(render_images=False, preset='fast'))
    yield e
    e.close()


def run_episode(env, runner, seed, triplet):
    filt = SafetyFilter()
    obs, info = env.reset(seed=seed, triplet=triplet)
    runner.start_episode(seed)
    frame, prev, prev_j6 = info['frame'], None, None
    for k in range(EPISODE_STEPS):
        step = runner.act(frame)                          # stacks the frame, as live
        linear, yaw, gripper = to_command(step.action)
        p = np.asarray(frame['sawyer/pinch/pose'][:3], np.float64)
        wrist = np.asarray(frame['sawyer/tcp/pose'][:3], np.float64)
        j6 = float(frame['sawyer/joints/angle'][6])
        vel = (p - prev) / CONTROL_PERIOD_S if prev is not None else None
        rate = (j6 - prev_j6) / CONTROL_PERIOD_S if prev is not None else None
        prev, prev_j6 = p, j6
        now = k * CONTROL_PERIOD_S                        # the tick's stamp: commands and observations
        twist, held, _ = filt.filter(tuple(linear) + (0.0, 0.0, yaw), gripper, p, j6, now, now, vel, rate,
                                     cmd_stamp=now, tcp_offset=p - wrist)
        obs, _, _, truncated, info = env.step(from_command(twist[:3], twist[5], held))
        frame = info['frame']
        if truncated:
            break
    return info['success'], filt


@pytest.mark.parametrize('triplet,seed', [('rgb_test_triplet1', 1), ('rgb_test_triplet5', 2)])
def test_scripted_expert_stacks_through_the_safety_filter(env, triplet, seed):
    runner = PolicyRunner(ScriptedPolicy(noise_std=0.0, seed=0))
    success, filt = run_episode(env, runner, seed, triplet)
    assert success, f'{triplet} seed {seed}: not stacked at the last step ({runner.policy.expert.phase})'
    assert runner.tick == EPISODE_STEPS
    assert filt.counters['rejected_nonfinite'] == 0


def test_noise_makes_different_but_reproducible_episodes(env):
    a = PolicyRunner(ScriptedPolicy(noise_std=0.3, seed=0))
    frames = []
    for runner in (a, PolicyRunner(ScriptedPolicy(noise_std=0.3, seed=0))):
        obs, info = env.reset(seed=3, triplet='rgb_test_triplet1')
        runner.start_episode(3)
        frames.append([runner.act(info['frame']).action for _ in range(5)])
    assert np.array_equal(np.array(frames[0]), np.array(frames[1]))
    obs, info = env.reset(seed=3, triplet='rgb_test_triplet1')
    a.start_episode(4)                                    # another episode seed: other noise
    other = [a.act(info['frame']).action for _ in range(5)]
    assert not np.array_equal(np.array(other), np.array(frames[0]))
