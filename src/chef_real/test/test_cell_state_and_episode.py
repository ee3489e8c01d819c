"""ROS-free cores: the state estimator (poses, twist, grasp flag, applied command), the episode
lifecycle (same events as the sim) and the reset planner."""

import json

import numpy as np
import pytest

from chef_bringup.workspace import workspace_root
from chef_contract import events as E
from chef_contract import topics as T
from chef_contract.spec import (
    ARM_JOINT_NAMES, GRASP_INWARD, GRASP_NONE, GRASP_OUTWARD, GRIPPER_JOINT_NAME, PROP_POSITION_HIGH_M,
    PROP_POSITION_LOW_M, REWARD_TERMS, TCP_POSITION_HIGH_M, TCP_POSITION_LOW_M,
)
from chef_real.cell_state import CellStateEstimator, GraspDetector, gripper_command_bench
from chef_real.description import home_joint_positions
from chef_real.episode import EpisodeLifecycle, ResetPlanner
from chef_real.transforms import matrix_to_pose7

URDF = (workspace_root() / 'config' / 'real' / 'robot' / 'rgb_cell.mock.urdf').read_text()
HOME = home_joint_positions(URDF)


def test_poses_and_twist_follow_the_joints():
    s = CellStateEstimator(URDF)
    assert not s.ready
    qd = np.array([0.1, -0.2, 0.05, 0.3, -0.1, 0.2, 0.4])
    s.update_joints(list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME], list(HOME) + [0.0], list(qd) + [0.0])
    assert s.ready
    np.testing.assert_allclose(s.pinch_pose7()[:3], (0.6, 0.0, 0.3), atol=1e-3)
    assert s.pinch_pose7()[3] >= 0
    # wrist twist = time derivative of the wrist pose along the joint velocity
    dt = 1e-6
    p0 = s.model.link_pose(T.WRIST_FRAME, dict(zip(ARM_JOINT_NAMES, HOME)))[:3, 3]
    p1 = s.model.link_pose(T.WRIST_FRAME, dict(zip(ARM_JOINT_NAMES, np.array(HOME) + qd * dt)))[:3, 3]
    np.testing.assert_allclose(s.wrist_twist()[:3], (p1 - p0) / dt, atol=1e-4)
    np.testing.assert_allclose(matrix_to_pose7(s.model.link_pose(T.WRIST_FRAME, s.q))[:3], s.wrist_pose7()[:3])


def test_applied_command_from_servo_positions_and_gripper_target():
    s = CellStateEstimator(URDF)
    q = np.array(HOME)
    s.update_arm_position_command(q, 1.00)
    s.update_arm_position_command(q + 0.001, 1.01)
    s.update_gripper_command(0.8)
    cmd = s.applied_command()
    np.testing.assert_allclose(cmd[:7], 0.1, atol=1e-9)      # 0.001 rad in 0.01 s
    assert cmd[7] == 255.0
    s.update_gripper_command(0.0)
    assert s.applied_command()[7] == -255.0
    s.command_went_stale()
    np.testing.assert_allclose(s.applied_command()[:7], 0.0)
    with pytest.raises(ValueError):
        s.update_arm_position_command([np.nan] * 7, 2.0)
    assert gripper_command_bench(None) == -255.0


def test_grasp_flag_rises_when_the_finger_stalls_on_an_object():
    g = GraspDetector()
    # closing freely: moving, then fully closed -> never a grasp
    assert [g.update(p, 1.0, 0.8) for p in (0.1, 0.3, 0.5)] == [GRASP_NONE] * 3
    assert [g.update(0.79, 0.0, 0.8) for _ in range(5)][-1] == GRASP_NONE
    # closing on an object: stalled at 0.45 rad
    flags = [g.update(0.45, 0.0, 0.8) for _ in range(4)]
    assert flags[:2] == [GRASP_NONE] * 2 and flags[-1] == GRASP_INWARD
    # opening, stalled mid-way (outward grasp)
    flags = [g.update(0.3, 0.0, 0.0) for _ in range(4)]
    assert flags[-1] == GRASP_OUTWARD
    assert g.update(float('nan'), 0.0, 0.8) == GRASP_NONE
    assert GraspDetector.from_robotiq_object_status(2) == GRASP_INWARD




def make_life(steps=5):
    events = []
    life = EpisodeLifecycle('cell0', 'rgb_test_triplet1', ['r3', 's0', 'b2'], events.append, first_seed=7,
                            episode_steps=steps)
    return life, events


def test_lifecycle_emits_start_and_end_with_returns_like_the_sim():
    life, events = make_life()
    assert life.command(E.EpisodeCommand('start', tags={'stage': 'collect'}), 1) is None
    ep = life.take_next()
    assert life.phase == 'resetting' and ep.seed == 7
    assert life.reset_done(True, 100)
    terms = {k: 0.5 for k in REWARD_TERMS}
    terms['sparse_success'] = 0.0
    for i in range(4):
        assert life.tick(terms, 100 + i) is None
    last = dict(terms, sparse_success=1.0)
    assert life.tick(last, 200) == 'end'
    start, end = events
    assert (start.event, end.event) == ('start', 'end')
    assert start.source == end.source == 'real' and start.episode_id == end.episode_id
    assert end.steps == 5 and end.success is True and end.returns['staged'] == pytest.approx(2.5)
    assert end.tags == {'stage': 'collect'} and end.objects == ['r3', 's0', 'b2']
    assert E.EpisodeEvent.from_json(end.to_json()) == end        # schema round trip
    assert life.phase == 'idle'
    # next episode gets the next seed
    life.command(E.EpisodeCommand('start'), 300)
    assert life.take_next().seed == 8


def test_stop_pause_estop_and_wrong_triplet():
    life, events = make_life()
    assert 'cannot run' in life.command(E.EpisodeCommand('start', triplet='rgb_test_triplet2'), 1)
    life.command(E.EpisodeCommand('start'), 1)
    life.take_next()
    life.reset_done(True, 2)
    life.tick(None, 3)
    life.command(E.EpisodeCommand('stop'), 4)
    assert events[-1].event == 'abort' and events[-1].reason == 'stop command' and events[-1].steps == 1
    assert events[-1].tags['missing_reward_ticks'] == 1
    life.set_paused(True, 5)
    life.command(E.EpisodeCommand('start'), 6)
    assert life.take_next() is None                  # paused: queue held
    life.set_paused(False, 7)
    assert life.take_next() is not None
    life.set_estop(True, 8)                          # e-stop during a reset aborts it
    assert events[-1].event == 'abort' and events[-1].reason == 'e-stop'
    assert not life.reset_done(True, 9)              # a late reset completion starts nothing
    life.command(E.EpisodeCommand('start'), 10)
    assert life.take_next() is None                  # e-stopped
    assert json.loads(events[-1].to_json())['source'] == 'real'


def test_reset_plan_is_reproducible_in_bounds_and_takes_the_top_object_first():
    objs = {'red': (0.6, 0.0, 0.115), 'green': (0.52, 0.07, 0.075), 'blue': (0.6, 0.0, 0.075)}
    planner = ResetPlanner()
    a, b = planner.plan(objs, 3), planner.plan(objs, 3)
    assert [[s.position_m for s in g] for _, g in a] == [[s.position_m for s in g] for _, g in b]
    assert [name for name, _ in a][:2] == ['home', 'red']           # red is on top: it goes first
    drops = [g[7].position_m for name, g in a if name in ('red', 'green', 'blue')]
    for d in drops:
        assert PROP_POSITION_LOW_M[0] <= d[0] <= PROP_POSITION_HIGH_M[0]
        assert PROP_POSITION_LOW_M[1] <= d[1] <= PROP_POSITION_HIGH_M[1] and d[2] == pytest.approx(0.12)
    for i in range(3):
        for j in range(i):
            assert np.linalg.norm(np.subtract(drops[i][:2], drops[j][:2])) >= 0.07 - 1e-9
    start = a[-1][1][-1].position_m
    assert all(lo <= v <= hi for v, lo, hi in zip(start, TCP_POSITION_LOW_M, TCP_POSITION_HIGH_M))
    assert planner.plan(objs, 4) != a
    with pytest.raises(ValueError, match='no position estimate'):
        planner.plan({'red': (0.6, 0, 0.1)}, 0)
