"""Online multi-task RL (CHEF's Collect stage): SAC-X scheduled auxiliary control with MPO updates.

    learner = OnlineLearner(cfg, run_dir)              # cfg: TrainerConfig, learner.algorithm 'mpo'
    summary = learner.run(env, env_steps)              # act, store, learn, checkpoint
    result = learner.evaluate(env, 'reach_grasp', episodes=5)

Acting: the scheduler (uniform SAC-U or learned SAC-Q) picks which intention's policy head acts in
each `switch_every`-tick segment; every transition goes into ONE shared replay, and every update
trains all K intentions on it, each with its own reward (the logged reward term of that name).
The learner can also be fed from outside (`add_episode`, `start_episode`/`append`): the trainer node
does that with episodes that other processes (the policy nodes of the running cells) collected.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch

from chef_contract.spec import REWARD_TERMS
from chef_policy.networks import obs_to_tensors
from chef_trainer.config import TrainerConfig
from chef_trainer.offline import LearningRun
from chef_trainer.replay import ReplayBuffer
from chef_trainer.scheduler import LearnedSchedule, make_schedule

PathLike = Union[str, Path]


def reward_vector(info: Mapping[str, Any]) -> np.ndarray:
    """info['reward_terms'] (dict by name or array in REWARD_TERMS order) -> [n_terms] float32."""
    terms = info.get('reward_terms')
    if terms is None:
        raise KeyError("env info lacks 'reward_terms'")
    if isinstance(terms, Mapping):
        return np.array([float(terms[name]) for name in REWARD_TERMS], np.float32)
    arr = np.asarray(terms, np.float32).reshape(-1)
    if arr.shape[0] != len(REWARD_TERMS):
        raise ValueError(f'reward_terms has {arr.shape[0]} values, expected {len(REWARD_TERMS)}')
    return arr


class OnlineLearner:
    """MPO learner + shared replay + SAC-X scheduler; ROS-free."""

    def __init__(self, cfg: TrainerConfig, run_dir: PathLike, device: Optional[str] = None,
                 resume: bool = True, init_checkpoint: Optional[PathLike] = None,
                 checkpoint_every: int = 0, seed: Optional[int] = None):
        if cfg.learner.algorithm != 'mpo':
            raise ValueError(f'the online learner runs mpo, config says {cfg.learner.algorithm!r}')
        self.cfg = cfg
        self.ocfg = cfg.online
        self.run = LearningRun(cfg.learner, run_dir, None, init_checkpoint=init_checkpoint,
                               resume=resume, checkpoint_every=checkpoint_every, device=device)
        self.learner = self.run.learner
        self.net = cfg.learner.network
        self.keys = tuple(self.net.input_keys) + tuple(self.net.image_keys)
        self.replay: Optional[ReplayBuffer] = None
        self.run.sampler = None
        self.schedule = make_schedule(self.ocfg.scheduler, cfg.learner.intentions, self.ocfg.switch_every,
                                      self.ocfg.scheduler_temperature,
                                      self.ocfg.episode_steps or 400, self.net.n_intentions,
                                      cfg.learner.intentions)
        self.env_steps = int(self.run.extra.get('env_steps', 0))
        self.episodes = int(self.run.extra.get('episodes', 0))
        self._seed = int(cfg.learner.seed if seed is None else seed) + 1000 * self.episodes
        self._update_credit = 0.0
        self.main_column = list(REWARD_TERMS).index(self.ocfg.main_intention)
        self.act_generator = torch.Generator().manual_seed(int(cfg.learner.seed) + 17)
        self.episode_log: list = []
        self.run.extra_provider = lambda: {'env_steps': self.env_steps, 'episodes': self.episodes}

    # --- replay ------------------------------------------------------------------------------------
    def _select(self, obs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise KeyError(f'observation lacks {missing} (network reads {list(self.keys)})')
        return {k: obs[k] for k in self.keys}

    def _ensure_replay(self, obs: Mapping[str, np.ndarray]) -> ReplayBuffer:
        if self.replay is None:
            spec = {k: np.asarray(obs[k]).shape for k in self.keys}
            dtypes = {k: (np.uint8 if k in self.net.image_keys else np.float32) for k in self.keys}
            self.replay = ReplayBuffer(self.ocfg.replay_capacity, spec, self.cfg.learner.n_step,
                                       self.cfg.learner.discount, obs_dtypes=dtypes)
            self.run.sampler = self.replay
        return self.replay

    def start_episode(self, obs: Mapping[str, np.ndarray]) -> None:
        self._ensure_replay(obs).start_episode(self._select(obs))

    def append(self, action, reward_terms, next_obs) -> None:
        self.replay.append(action, reward_terms, self._select(next_obs))

    def add_episode(self, frames: Mapping[str, np.ndarray], actions, reward_terms) -> None:
        """A whole recorded episode (frames {key: [T+1, ...]}, actions [T, 5], terms [T, n])."""
        self._ensure_replay({k: np.asarray(frames[k])[0] for k in self.keys})
        self.replay.add_episode({k: frames[k] for k in self.keys}, actions, reward_terms)

    # --- acting ------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray], intention: int, deterministic: bool = False) -> np.ndarray:
        t = obs_to_tensors(obs, self.net, self.learner.device)
        a = self.learner.actor.act(t, int(intention), deterministic=deterministic,
                                   generator=self.act_generator if self.learner.device.type == 'cpu' else None)
        return a[0].cpu().numpy().astype(np.float32)

    def learn(self, n: int) -> Optional[Dict[str, Any]]:
        out = None
        for _ in range(n):
            out = self.run.update()
        return out

    def ready(self) -> bool:
        return self.replay is not None and self.replay.transitions_added >= self.ocfg.min_replay

    def run_env(self, env, env_steps: int, progress: bool = True, triplet: Optional[str] = None
                ) -> Dict[str, Any]:
        """Act in `env` (Gymnasium-style, info['reward_terms']) until `env_steps` total steps."""
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=env_steps, initial=self.env_steps, desc='SAC-X env steps', unit='step',
                       dynamic_ncols=True)
        t0 = time.monotonic()
        try:
            while self.env_steps < env_steps:
                self._episode(env, env_steps, bar, triplet)
        finally:
            if bar is not None:
                bar.close()
        summary = self.finish()
        summary['env_s'] = time.monotonic() - t0
        return summary

    def _episode(self, env, env_steps_limit: int, bar, triplet) -> None:
        seed = self._seed
        self._seed += 1
        kwargs = {'seed': seed}
        if triplet is not None:
            kwargs['triplet'] = triplet
        obs, info = env.reset(**kwargs)
        self.start_episode(obs)
        self.schedule.reset(seed)
        limit = self.ocfg.episode_steps or None
        returns = np.zeros(len(REWARD_TERMS))
        main_rewards = []
        t = 0
        while True:
            k = self.schedule.intention(t)
            action = self.act(obs, k)
            obs, _, terminated, truncated, info = env.step(action)
            terms = reward_vector(info)
            self.append(action, terms, obs)
            returns += terms
            main_rewards.append(terms[self.main_column])
            t += 1
            self.env_steps += 1
            if bar is not None:
                bar.update(1)
            if self.ready():
                self._update_credit += self.ocfg.updates_per_step
                n = int(self._update_credit)
                self._update_credit -= n
                self.learn(n)
            if terminated or truncated or (limit and t >= limit) or self.env_steps >= env_steps_limit:
                break
        self.episodes += 1
        if isinstance(self.schedule, LearnedSchedule):
            self.schedule.observe_episode(np.asarray(main_rewards))
        self.episode_log.append({'episode': self.episodes, 'steps': t, 'seed': seed,
                                 'intentions': list(self.schedule.segments),
                                 'returns': dict(zip(REWARD_TERMS, returns.round(4).tolist()))})
        if bar is not None:
            bar.set_postfix({'ep': self.episodes, 'upd': self.learner.steps}, refresh=False)

    @torch.no_grad()
    def evaluate(self, env, intention: Union[int, str], episodes: int = 5, seed: int = 10_000,
                 deterministic: bool = True, steps: Optional[int] = None,
                 triplet: Optional[str] = None) -> Dict[str, Any]:
        """Run `episodes` episodes with one fixed intention; per-term returns and final-tick terms."""
        k = list(self.cfg.learner.intentions).index(intention) if isinstance(intention, str) \
            else int(intention)
        limit = steps or self.ocfg.episode_steps or None
        per_episode = []
        for e in range(episodes):
            kwargs = {'seed': seed + e}
            if triplet is not None:
                kwargs['triplet'] = triplet
            obs, info = env.reset(**kwargs)
            total = np.zeros(len(REWARD_TERMS))
            terms = np.zeros(len(REWARD_TERMS))
            t = 0
            while True:
                obs, _, terminated, truncated, info = env.step(self.act(obs, k, deterministic))
                terms = reward_vector(info)
                total += terms
                t += 1
                if terminated or truncated or (limit and t >= limit):
                    break
            per_episode.append({'returns': total, 'final': terms, 'steps': t})
        return {
            'intention': k, 'episodes': episodes,
            'mean_return': dict(zip(REWARD_TERMS, np.mean([p['returns'] for p in per_episode], 0).tolist())),
            'mean_final': dict(zip(REWARD_TERMS, np.mean([p['final'] for p in per_episode], 0).tolist())),
            'per_episode': per_episode,
        }

    # --- checkpoints -------------------------------------------------------------------------------
    def checkpoint(self) -> Dict[str, Any]:
        return self.run.checkpoint()

    def finish(self) -> Dict[str, Any]:
        summary = self.run.finish()
        summary.update(env_steps=self.env_steps, episodes=self.episodes)
        self.run.metrics.write_summary(summary)
        return summary

    def close(self) -> None:
        self.run.close()
