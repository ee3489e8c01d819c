"""Suite-wide invariants of RgbStackingEnv (dm_control style): determinism under a seed, observation
spec conformance, no aliased arrays; plus episode structure, initial-state distribution (spec §B.9),
observation conventions (spec X2-X5) and input validation."""

import math

import numpy as np
import pytest

from chef_contract.action import InvalidAction
from chef_contract.obs import check_spec, flatten_state
from chef_contract.spec import (
    ARM_JOINT_VELOCITY_LIMITS_RPS, OBJECT_COLOURS, PINCH_TO_WRIST_M, PROP_POSITION_HIGH_M,
    PROP_POSITION_LOW_M, REWARD_TERMS, STATE_OBSERVATION_NAMES, STATE_OBSERVATIONS,
    TCP_POSITION_HIGH_M, TCP_POSITION_LOW_M, image_key, state_size,
)
from chef_sim import assets as A
from chef_sim.env import RgbStackingEnv, SimConfig

CAMS = ('basket_front_left', 'basket_front_right', 'basket_back_left')


def make(**kw):
    cfg = dict(render_images=False, preset='fast')
    cfg.update(kw)
    return RgbStackingEnv(SimConfig(**cfg))


@pytest.fixture(scope='module')
def env():
    e = make()
    yield e
    e.close()


@pytest.fixture(scope='module')
def cam_env():
    e = make(render_images=True, image_size=32)
    yield e
    e.close()


def rollout(env, seed, n, triplet=None, action_seed=0):
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed, triplet=triplet)
    out = [(obs, 0.0, info)]
    for _ in range(n):
        obs, r, term, trunc, info = env.step(rng.uniform(-1, 1, 5))
        out.append((obs, r, info))
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --- determinism ----------------------------------------------------------------------------------
def test_determinism_across_instances(cam_env):
    other = make(render_images=True, image_size=32)
    try:
        a = rollout(cam_env, seed=11, n=12)
        b = rollout(other, seed=11, n=12)
    finally:
        other.close()
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        assert_same(oa, ob)
        assert ra == rb
        assert ia['reward_terms'] == ib['reward_terms']


def test_determinism_after_other_episodes_and_triplets(env):
    first = rollout(env, seed=5, n=8)
    rollout(env, seed=6, n=5, triplet='rgb_train_random')      # other objects (meshes swapped)
    again = rollout(env, seed=5, n=8, triplet='rgb_test_triplet1')
    for (oa, ra, _), (ob, rb, _) in zip(first, again):
        assert_same(oa, ob)
        assert ra == rb


def test_different_seeds_differ(env):
    a, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    assert not np.array_equal(a['rgb30_red/abs_pose'], b['rgb30_red/abs_pose'])
    assert not np.array_equal(a['sawyer/joints/angle'], b['sawyer/joints/angle'])


# --- spec conformance -----------------------------------------------------------------------------
def test_observation_spec(cam_env):
    obs, info = cam_env.reset(seed=0)
    for step in range(2):
        check_spec(obs, STATE_OBSERVATION_NAMES)
        for key in STATE_OBSERVATIONS:
            assert obs[key.name].dtype == np.float32, key.name
            assert np.all(np.isfinite(obs[key.name])), key.name
        for cam in CAMS:
            img = obs[image_key(cam)]
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8
            assert img.std() > 1.0                      # a real rendering, not a blank buffer
        assert flatten_state(obs, STATE_OBSERVATION_NAMES).shape == (state_size(),) == (292,)
        assert set(info['reward_terms']) == set(REWARD_TERMS)
        assert info['frame']['sawyer/joints/angle'].shape == (7,)
        obs, _, _, _, info = cam_env.step(np.zeros(5))


def test_frame_stacking_newest_first(env):
    obs0, info0 = env.reset(seed=3)
    assert np.array_equal(obs0['sawyer/joints/angle'][0], obs0['sawyer/joints/angle'][2])  # padded
    obs1, _, _, _, info1 = env.step(np.array([0.5, 0, 0, 0, -1]))
    obs2, _, _, _, info2 = env.step(np.array([0.5, 0, 0, 0, 1]))
    for key in ('sawyer/joints/angle', 'rgb30_red/abs_pose', 'wrist/force'):
        np.testing.assert_array_equal(obs2[key][0], info2['frame'][key])
        np.testing.assert_array_equal(obs2[key][1], info1['frame'][key])
        np.testing.assert_array_equal(obs2[key][2], info0['frame'][key])
    assert obs2['action/environment'].shape == (2, 8)
    np.testing.assert_array_equal(obs2['action/environment'][1], info1['frame']['action/environment'])
    assert obs2['gripper/grasp'].shape == (3,)


# --- aliasing -------------------------------------------------------------------------------------
def test_no_aliased_arrays(cam_env):
    obs_a, info_a = cam_env.reset(seed=4)
    obs_b, _, _, _, info_b = cam_env.step(np.zeros(5))
    arrays = list(obs_a.values()) + list(obs_b.values()) + list(info_a['frame'].values())
    for i, x in enumerate(arrays):
        for y in arrays[i + 1:]:
            assert not np.shares_memory(x, y)
    snapshot = {k: v.copy() for k, v in obs_b.items()}
    frame = cam_env.raw_frame()
    for v in list(obs_b.values()) + list(info_b['frame'].values()):
        v[...] = 0                                      # caller scribbles over what it got
    assert_same(cam_env.raw_frame(), frame)
    obs_c, _, _, _, _ = cam_env.step(np.zeros(5))
    np.testing.assert_array_equal(obs_c['sawyer/joints/angle'][1], snapshot['sawyer/joints/angle'][0])


# --- episode structure and validation --------------------------------------------------------------
def test_fixed_length_episodes():
    e = make(episode_steps=3)
    try:
        e.reset(seed=0)
        flags = [e.step(np.zeros(5))[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
        with pytest.raises(RuntimeError):
            e.step(np.zeros(5))
        e.reset(seed=0)
        e.step(np.zeros(5))
    finally:
        e.close()


@pytest.mark.parametrize('bad', [[np.nan, 0, 0, 0, 0], [0, 0, np.inf, 0, 0], [0, 0, 0, 0]])
def test_invalid_actions_never_reach_physics(env, bad):
    env.reset(seed=0)
    env.step(np.zeros(5))
    qpos, ctrl, t = env.data.qpos.copy(), env.data.ctrl.copy(), env.data.time
    with pytest.raises(InvalidAction):
        env.step(np.array(bad, float))
    assert np.array_equal(env.data.qpos, qpos) and np.array_equal(env.data.ctrl, ctrl)
    assert env.data.time == t and env.step_count == 1
    env.step(np.zeros(5))                                # still usable


def test_out_of_range_actions_are_clipped(env):
    env.reset(seed=0)
    a = env.step(np.array([5.0, 0, 0, 0, -1]))[4]['frame']['action/environment']
    env.reset(seed=0)
    b = env.step(np.array([1.0, 0, 0, 0, -1]))[4]['frame']['action/environment']
    np.testing.assert_array_equal(a, b)


# --- initial state (spec §B.9) ---------------------------------------------------------------------
def test_initial_state_distribution(env):
    yaws = []
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        f = info['frame']
        pinch = f['sawyer/pinch/pose'].astype(float)
        assert np.all(pinch[:3] >= np.array(TCP_POSITION_LOW_M) - 2e-3)
        assert np.all(pinch[:3] <= np.array(TCP_POSITION_HIGH_M) + 2e-3)
        w, x, y, z = pinch[3:]
        zaxis_z = 1 - 2 * (x * x + y * y)
        assert zaxis_z < -0.999                          # pointing down
        yaws.append(math.atan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))
        for colour in OBJECT_COLOURS:
            p = f[f'rgb30_{colour}/abs_pose'][:3]
            assert PROP_POSITION_LOW_M[0] - 0.08 < p[0] < PROP_POSITION_HIGH_M[0] + 0.08
            assert PROP_POSITION_LOW_M[1] - 0.08 < p[1] < PROP_POSITION_HIGH_M[1] + 0.08
            assert 0.05 < p[2] < 0.12                    # dropped from 0.12 m, resting in the basket
        assert np.abs(f['sawyer/joints/velocity']).max() < 1e-3
    assert len(set(np.round(yaws, 3))) == len(yaws)


# --- observation conventions (spec X2-X5) ----------------------------------------------------------
def test_observation_conventions(env):
    env.reset(seed=8)
    for k in range(3):
        _, _, _, _, info = env.step(np.array([0.3, -0.2, -0.4, 0.5, 1.0 if k else -1.0]))
    f = info['frame']
    for key in ('sawyer/pinch/pose', 'sawyer/tcp/pose') + tuple(f'rgb30_{c}/abs_pose' for c in OBJECT_COLOURS):
        q = f[key][3:]
        assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5) and q[0] >= 0, key
    for c in OBJECT_COLOURS:
        np.testing.assert_allclose(f[f'rgb30_{c}/to_pinch'], f[f'rgb30_{c}/abs_pose'] - f['sawyer/pinch/pose'],
                                   atol=1e-7)
    # 'tcp' is the wrist site, 0.2012 m up the tool axis from the pinch point (spec X4)
    d = f['sawyer/tcp/pose'][:3] - f['sawyer/pinch/pose'][:3]
    assert np.linalg.norm(d) == pytest.approx(PINCH_TO_WRIST_M, abs=2e-3) and d[2] > 0.19
    # action/environment = joint-level command: 7 joint velocities within limits + gripper +-255
    cmd = f['action/environment']
    assert np.all(np.abs(cmd[:7]) <= np.array(ARM_JOINT_VELOCITY_LIMITS_RPS) + 1e-6)
    assert cmd[7] == 255.0
    assert np.array_equal(env.data.ctrl[env.index.arm_actuators].astype(np.float32), cmd[:7])
    _, info0 = env.reset(seed=8)
    cmd0 = info0['frame']['action/environment']
    assert cmd0[7] == -255.0 and np.any(cmd0[:7] != 0)    # small non-zero values at reset (X5)
    finger = f['gripper/joints/angle'][0]
    assert 0.0 <= finger <= 255.0 and finger == round(finger)      # integer 0..255 scale
    assert f['gripper/grasp'][0] in (1.0, 2.0, 3.0)


def test_random_triplets_resample_each_episode(env):
    train = set(A.object_sets()['train'])
    seen = set()
    for seed in range(4):
        _, info = env.reset(seed=seed, triplet='rgb_train_random')
        assert info['triplet'] == 'rgb_train_random'
        assert all(o in train for o in info['objects'])
        seen.add(info['objects'])
    assert len(seen) == 4
    _, info = env.reset(seed=0, triplet='rgb_test_triplet3')
    assert info['objects'] == ('r6', 'g3', 'b5')
    _, info = env.reset(seed=0)                           # keeps the last triplet
    assert info['objects'] == ('r6', 'g3', 'b5')


def test_domain_randomization_seeded_and_off_by_default(env):
    nominal_light = env.model.light_diffuse.copy()
    env.reset(seed=1)
    assert np.array_equal(env.model.light_diffuse, nominal_light)
    from chef_sim.randomization import DomainRandomizationConfig
    e = RgbStackingEnv(SimConfig(render_images=False, preset='fast',
                                 domain_randomization=DomainRandomizationConfig(enabled=True)))
    try:
        e.reset(seed=1)
        a = (e.model.light_diffuse.copy(), e.model.geom_rgba.copy(), e.model.body_mass.copy())
        e.reset(seed=2)
        b = (e.model.light_diffuse.copy(), e.model.geom_rgba.copy(), e.model.body_mass.copy())
        e.reset(seed=1)
        c = (e.model.light_diffuse.copy(), e.model.geom_rgba.copy(), e.model.body_mass.copy())
        assert all(np.array_equal(x, z) for x, z in zip(a, c))
        assert not all(np.array_equal(x, y) for x, y in zip(a, b))
        red_mass = e.model.body_mass[e.index.prop_bodies['red']]
        assert 0.2 * 0.8 <= red_mass <= 0.2 * 1.2 and red_mass != 0.2
    finally:
        e.close()
