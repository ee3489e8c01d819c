"""The pixel reward against the simulator's ground truth (issue 8: 'matches ground truth in sim
within a stated tolerance').

Stated tolerance, checked here on two full 400-tick episodes of the MuJoCo cell driven by a scripted
stacker (bench/bench_pixel_reward.py measures the same over more episodes):
  * per-tick agreement of the sparse success (pixels + pose-only criterion vs the sim's contact-based
    criterion) >= 95 %, and the episode success (final tick) agrees in every episode;
  * median object position error <= 1.5 cm for every colour;
  * mean absolute error of the staged reward <= 0.05 (reward range 0..1).
"""

import numpy as np
import pytest

from chef_real.validation import PixelReward, ScriptedStacker, make_sim_env, run_episode, sim_cameras, summarize

TICK_SUCCESS_AGREEMENT_MIN = 0.95
MEDIAN_POSITION_ERROR_MAX_M = 0.015
STAGED_ABS_ERROR_MAX = 0.05


@pytest.fixture(scope='module')
def episodes():
    # Two full episodes with rendering of two cameras: ~25-35 s on 2 cores (> 20 s because the
    # criterion is defined on complete 400-tick episodes, stacking happens after tick ~250).
    env = make_sim_env()
    try:
        pixel = PixelReward(sim_cameras(env))
        return [run_episode(env, pixel, ScriptedStacker(), seed, triplet, 400)
                for seed, triplet in ((100, 'rgb_test_triplet1'), (101, 'rgb_test_triplet4'))]
    finally:
        env.close()


def test_pixel_reward_matches_sim_ground_truth_within_the_stated_tolerance(episodes):
    s = summarize(episodes)
    assert s['ticks'] >= 790                         # estimates available from the first ticks on
    assert s['tick_success_agreement'] >= TICK_SUCCESS_AGREEMENT_MIN, s
    assert s['episode_success_agreement'] == 1.0, s
    assert s['tick_success_true_positives'] > 0, 'no stacked tick: the check would be vacuous'
    for colour, e in s['position_error_m'].items():
        assert e['median'] <= MEDIAN_POSITION_ERROR_MAX_M, (colour, e)
    assert s['staged_abs_error_mean'] <= STAGED_ABS_ERROR_MAX, s


def test_estimates_come_from_both_cameras_most_of_the_time(episodes):
    methods = [m for ep in episodes for tk in ep.ticks for m in tk.methods.values()]
    assert methods.count('stereo') / len(methods) > 0.9
    assert all(np.isfinite(tk.est_pos[c]).all() for ep in episodes for tk in ep.ticks if tk.est_pos
               for c in tk.est_pos)
