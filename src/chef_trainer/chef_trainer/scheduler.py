"""SAC-X intention schedulers for online acting (Riedmiller et al. 2018).

* uniform (SAC-U): chef_policy.schedule.IntentionSchedule, the one the policy node uses: every
  `switch_every` ticks an intention is drawn uniformly (reproducible from the episode seed).
* learned (SAC-Q): `LearnedSchedule` keeps Q(h, k) = mean return of the *main* task collected from
  segment h to the end of the episode after choosing intention k at segment h, and draws
  intentions from a Boltzmann distribution softmax(Q(h, .) / temperature). Updated with the
  Monte-Carlo returns of every finished episode (running mean with step size 1/n, floor `lr`).
Both expose reset(seed, tags=None), intention(step) and segments.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

import numpy as np

from chef_contract.spec import EPISODE_STEPS, INTENTIONS
from chef_policy.schedule import IntentionSchedule, intention_index


def make_schedule(kind: str, candidates: Sequence[str] = INTENTIONS, switch_every: int = 100,
                  temperature: float = 1.0, episode_steps: int = EPISODE_STEPS,
                  n_intentions: int = len(INTENTIONS), intentions: Sequence[str] = INTENTIONS):
    """A scheduler over `candidates` (names or indices), given as head indices into `intentions`
    (the learner's intention list, which may be a subset of the contract's INTENTIONS)."""
    names = list(intentions)
    candidates = [names.index(c) if isinstance(c, str) else int(c) for c in candidates]
    if kind == 'uniform':
        return IntentionSchedule(candidates, switch_every, n_intentions=n_intentions)
    if kind == 'learned':
        return LearnedSchedule(candidates, switch_every, temperature, episode_steps, n_intentions)
    raise ValueError(f'unknown scheduler {kind!r} (uniform | learned)')


class LearnedSchedule:
    """SAC-Q scheduler: Boltzmann over a tabular estimate of the main-task return per segment."""

    def __init__(self, candidates: Sequence[str] = INTENTIONS, switch_every: int = 100,
                 temperature: float = 1.0, episode_steps: int = EPISODE_STEPS,
                 n_intentions: int = len(INTENTIONS), lr: float = 0.05):
        self.candidates = [intention_index(c, n_intentions) for c in candidates]
        self.switch_every = int(switch_every)
        self.temperature = float(temperature)
        self.n_segments = -(-int(episode_steps) // self.switch_every)
        self.q = np.zeros((self.n_segments, len(self.candidates)))
        self.n = np.zeros_like(self.q)
        self.lr = float(lr)
        self._rng = np.random.default_rng(0)
        self._segments: List[int] = []

    def probabilities(self, segment: int) -> np.ndarray:
        q = self.q[min(segment, self.n_segments - 1)] / self.temperature
        p = np.exp(q - q.max())
        return p / p.sum()

    def reset(self, seed: int, tags: Optional[Mapping] = None) -> None:
        self._rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5AC0])
        self._segments = []

    def intention(self, step: int) -> int:
        seg = max(0, int(step)) // self.switch_every
        while seg >= len(self._segments):
            h = len(self._segments)
            j = int(self._rng.choice(len(self.candidates), p=self.probabilities(h)))
            self._segments.append(self.candidates[j])
        return self._segments[seg]

    @property
    def segments(self) -> List[int]:
        return list(self._segments)

    def observe_episode(self, main_rewards: np.ndarray) -> None:
        """Update Q from the main-task reward of every tick of the finished episode."""
        r = np.asarray(main_rewards, np.float64)
        for h, k in enumerate(self._segments[:self.n_segments]):
            ret = float(r[h * self.switch_every:].sum())
            j = self.candidates.index(k)
            self.n[h, j] += 1
            step = max(1.0 / self.n[h, j], self.lr)
            self.q[h, j] += step * (ret - self.q[h, j])
