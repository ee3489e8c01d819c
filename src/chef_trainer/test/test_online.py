"""Online SAC-X + MPO in the real MuJoCo cell (chef_sim, state only, no rendering): the reach
intention is mastered within a CI-sized budget, and an online run resumes its counters."""

import numpy as np
import pytest

from chef_contract.spec import REWARD_TERMS
from chef_sim.env import RgbStackingEnv, SimConfig
from chef_trainer.config import default_config_dir, load_learner_config
from chef_trainer.online import OnlineLearner, reward_vector
from chef_trainer.scheduler import LearnedSchedule

ENV_STEPS = 4500
EVAL_SEEDS = 4


def reach_env(cfg):
    return RgbStackingEnv(SimConfig(render_images=False, preset='fast',
                                    episode_steps=cfg.online.episode_steps))


@pytest.mark.timeout(600)
def test_sacx_mpo_masters_reach_in_the_sim(tmp_path):
    # > 20 s (about a minute on a quiet 2-core machine): 4500 simulated ticks (30 episodes of
    # 7.5 s) with one MPO update per tick; reaching needs that much experience.
    cfg = load_learner_config(default_config_dir() / 'mpo_reach_ci.yaml')
    env = reach_env(cfg)
    learner = OnlineLearner(cfg, tmp_path / 'run')
    before = learner.evaluate(env, 'reach_grasp', episodes=EVAL_SEEDS, seed=500)
    summary = learner.run_env(env, ENV_STEPS, progress=False)
    after = learner.evaluate(env, 'reach_grasp', episodes=EVAL_SEEDS, seed=500)
    learner.close()
    assert summary['env_steps'] == ENV_STEPS and summary['steps'] > 0.8 * ENV_STEPS
    final_before = np.array([p['final'][0] for p in before['per_episode']])
    final_after = np.array([p['final'][0] for p in after['per_episode']])
    # reach_grasp = 0.5 * reach while not grasping: 0.51 within 2 cm (the scripted reach), 0.25 at
    # ~6 cm, 0.2 at ~7 cm, ~0 beyond 20 cm. The untrained policy stays ~0 (the TCP starts 20-40 cm
    # away); the trained reach head brings the pinch to the object.
    assert final_before.mean() < 0.05, final_before
    assert final_after.mean() > 0.25, (final_after, summary['final'])
    assert (final_after > 0.2).sum() >= EVAL_SEEDS - 1, final_after
    assert after['mean_return']['reach_grasp'] > 10 * before['mean_return']['reach_grasp']
    # every intention learned from the shared replay: the schedule used both heads
    used = {k for e in learner.episode_log for k in e['intentions']}
    assert used == {0, 1}


def test_online_counters_resume_and_learned_scheduler(tmp_path):
    cfg = load_learner_config(default_config_dir() / 'mpo_reach_ci.yaml',
                              ['online.min_replay=20', 'online.episode_steps=30',
                               'online.scheduler=learned', 'online.switch_every=10',
                               'learner.batch_size=16'])
    env = reach_env(cfg)
    first = OnlineLearner(cfg, tmp_path / 'run', checkpoint_every=10)
    assert isinstance(first.schedule, LearnedSchedule)
    first.run_env(env, 60, progress=False)
    assert first.env_steps == 60 and first.episodes == 2
    assert np.any(first.schedule.n > 0)                  # SAC-Q table updated from returns
    steps = first.learner.steps
    first.close()
    second = OnlineLearner(cfg, tmp_path / 'run')
    assert (second.env_steps, second.episodes, second.learner.steps) == (60, 2, steps)
    second.run_env(env, 90, progress=False)
    assert second.env_steps == 90 and second.episodes == 3
    second.close()


def test_reward_vector_accepts_dicts_and_arrays_and_refuses_the_rest():
    terms = {name: float(i) for i, name in enumerate(REWARD_TERMS)}
    assert reward_vector({'reward_terms': terms}).tolist() == list(range(len(REWARD_TERMS)))
    assert reward_vector({'reward_terms': np.arange(7)}).shape == (7,)
    with pytest.raises(KeyError):
        reward_vector({})
    with pytest.raises(ValueError):
        reward_vector({'reward_terms': [1.0, 2.0]})
