"""In-memory replay of stacked observations with n-step returns over every reward term.

`ReplayBuffer` is the online learner's shared replay (all SAC-X intentions learn from it) and the
trainer node's live replay of fresh episodes. It yields batches in exactly the format of the
recorder's `TransitionSampler`, so learners never know where a batch came from:

    dict(obs={key: [B, ...]}, action [B, 5], rewards [B, n_terms] (n-step discounted sums of every
         logged reward term), next_obs={key: [B, ...]}, discount [B] (gamma^m, m <= n steps taken))

Storage is a ring of frames (one row per control tick) written episode by episode, incrementally:
`start_episode(obs_0)` then `append(action_t, reward_terms_t, obs_{t+1})` per tick. A transition at
frame i exists when frame i+1 belongs to the same episode; its n-step window is cut at the newest
frame of that episode (a valid m-step target, m <= n). Episodes end by the step limit (time-limit
truncation), so the last observation is bootstrapped from; an episode can be closed as a true
terminal (`terminal=True` on its last append), which zeroes the discount of windows reaching it.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from chef_contract.spec import ACTION_DIM, REWARD_TERMS


class ReplayError(ValueError):
    pass


class ReplayBuffer:
    """Ring buffer of frames with incremental episodes and n-step sampling."""

    def __init__(self, capacity: int, obs_spec: Mapping[str, tuple], n_step: int, discount: float,
                 n_terms: int = len(REWARD_TERMS), obs_dtypes: Optional[Mapping[str, np.dtype]] = None):
        if n_step < 1:
            raise ReplayError('n_step must be >= 1')
        if capacity < 2 * (n_step + 1):
            raise ReplayError(f'capacity {capacity} is too small for n_step {n_step}')
        self.capacity = int(capacity)
        self.n_step = int(n_step)
        self.discount = float(discount)
        self.n_terms = n_terms
        dtypes = dict(obs_dtypes or {})
        self.obs = {k: np.zeros((capacity,) + tuple(shape), dtypes.get(k, np.float32))
                    for k, shape in obs_spec.items()}
        self.action = np.zeros((capacity, ACTION_DIM), np.float32)
        self.reward = np.zeros((capacity, n_terms), np.float32)
        self.episode = np.full(capacity, -1, np.int64)      # episode id of each frame (-1 = empty)
        self.tick = np.zeros(capacity, np.int64)           # control tick of each frame in its episode
        self._frames_of = np.zeros(64, np.int64)           # frames written so far, by episode id
        self._terminal = np.zeros(64, bool)                # episode ended in a true terminal state
        self._next_id = 0
        self._cur: Optional[int] = None                    # episode being written
        self._pos = 0                                      # next ring slot
        self.frames_written = 0
        self.transitions_added = 0
        self._powers = self.discount ** np.arange(n_step + 1)

    # --- writing -----------------------------------------------------------------------------------
    def _write_obs(self, obs: Mapping[str, np.ndarray]) -> int:
        slot = self._pos
        for k, buf in self.obs.items():
            if k not in obs:
                raise ReplayError(f'observation lacks {k!r}')
            value = np.asarray(obs[k])
            if value.shape != buf.shape[1:]:
                raise ReplayError(f'{k}: shape {value.shape}, expected {buf.shape[1:]}')
            if buf.dtype.kind == 'f' and not np.all(np.isfinite(value)):
                raise ReplayError(f'{k} is not finite')
            buf[slot] = value
        ep = self._cur
        if ep >= len(self._frames_of):
            self._frames_of = np.concatenate([self._frames_of, np.zeros_like(self._frames_of)])
            self._terminal = np.concatenate([self._terminal, np.zeros_like(self._terminal)])
        self.episode[slot] = ep
        self.tick[slot] = self._frames_of[ep]
        self._frames_of[ep] += 1
        self._pos = (slot + 1) % self.capacity
        self.frames_written += 1
        return slot

    def start_episode(self, obs: Mapping[str, np.ndarray]) -> int:
        """Begin a new episode with its first (stacked) observation; returns the episode id."""
        self._cur = self._next_id
        self._next_id += 1
        self._write_obs(obs)
        return self._cur

    def append(self, action: np.ndarray, reward_terms: np.ndarray, next_obs: Mapping[str, np.ndarray],
               terminal: bool = False):
        """One transition of the current episode: action_t, reward terms of t, obs_{t+1}.

        terminal=True ends the episode in a true terminal state (no bootstrap from obs_{t+1})."""
        if self._cur is None:
            raise ReplayError('append() before start_episode()')
        action = np.asarray(action, np.float32).reshape(ACTION_DIM)
        reward_terms = np.asarray(reward_terms, np.float32).reshape(self.n_terms)
        if not (np.all(np.isfinite(action)) and np.all(np.isfinite(reward_terms))):
            raise ReplayError('action or reward terms are not finite')
        if self._frames_of[self._cur] >= self.capacity - self.n_step - 1:
            raise ReplayError('episode longer than the replay capacity')
        prev = (self._pos - 1) % self.capacity
        self.action[prev] = action
        self.reward[prev] = reward_terms
        self._write_obs(next_obs)
        self.transitions_added += 1
        if terminal:
            self._terminal[self._cur] = True
            self._cur = None

    def add_episode(self, frames: Mapping[str, np.ndarray], actions: np.ndarray,
                    reward_terms: np.ndarray, terminal: bool = False) -> int:
        """A whole episode: frames {key: [T+1, ...]}, actions [T, 5], reward_terms [T, n_terms]."""
        t = len(actions)
        if len(reward_terms) != t:
            raise ReplayError(f'{t} actions but {len(reward_terms)} reward rows')
        for k in self.obs:
            if k not in frames:
                raise ReplayError(f'episode lacks observation {k!r}')
            if len(frames[k]) != t + 1:
                raise ReplayError(f'{k}: {len(frames[k])} frames for {t} actions (need T+1)')
        ep = self.start_episode({k: frames[k][0] for k in self.obs})
        for i in range(t):
            self.append(actions[i], reward_terms[i], {k: frames[k][i + 1] for k in self.obs},
                        terminal=terminal and i == t - 1)
        return ep

    # --- reading -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of transitions currently stored (approx.: frames minus episode ends)."""
        return int(min(self.frames_written, self.capacity) - np.count_nonzero(self._last_frames()))

    def _last_frames(self):
        ep = self.episode
        filled = ep >= 0
        frames = self._frames_of[np.where(filled, ep, 0)]
        return filled & (self.tick == frames - 1)

    def _window(self, idx: np.ndarray) -> np.ndarray:
        """Steps m (0..n) available after frame idx inside its episode and still in the ring."""
        ep = self.episode[idx]
        avail = self._frames_of[np.where(ep >= 0, ep, 0)] - 1 - self.tick[idx]
        m = np.minimum(avail, self.n_step)
        # frames written after idx but already overwritten by newer episodes cannot happen: the ring
        # overwrites oldest first, and later frames of an episode are always newer than earlier ones.
        # A frame whose *successor* was overwritten is the last surviving frame of its episode only
        # if the successor slot now holds another episode; check that explicitly.
        nxt = (idx + 1) % self.capacity
        m = np.where((ep >= 0) & (self.episode[nxt] == ep) & (self.tick[nxt] == self.tick[idx] + 1), m, 0)
        return m

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        size = min(self.frames_written, self.capacity)
        if size == 0 or self.transitions_added == 0:
            raise ReplayError('the replay holds no transition yet')
        out = []
        need = batch_size
        for _ in range(1000):
            cand = rng.integers(0, size, size=2 * need + 8)
            good = cand[self._window(cand) > 0]
            out.append(good[:need])
            need -= len(out[-1])
            if need <= 0:
                return np.concatenate(out)
        raise ReplayError('could not draw valid transitions (replay almost empty?)')

    def gather(self, idx: np.ndarray, keys: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """Batch dict (TransitionSampler format) for frames `idx` (each must have m >= 1)."""
        m = self._window(idx)
        if np.any(m < 1):
            raise ReplayError('gather() of frames without a successor')
        offs = np.arange(self.n_step)
        win = (idx[:, None] + offs[None, :]) % self.capacity              # [B, n]
        mask = offs[None, :] < m[:, None]
        coef = np.where(mask, self._powers[:self.n_step][None, :], 0.0).astype(np.float32)
        rewards = np.einsum('bn,bnt->bt', coef, self.reward[win])
        nxt = (idx + m) % self.capacity
        ep = self.episode[idx]
        ends_terminal = self._terminal[ep] & (self.tick[idx] + m == self._frames_of[ep] - 1)
        discount = np.where(ends_terminal, 0.0, self._powers[m])
        keys = list(keys) if keys is not None else list(self.obs)
        return {
            'obs': {k: self.obs[k][idx] for k in keys},
            'action': self.action[idx].copy(),
            'rewards': rewards.astype(np.float32),
            'next_obs': {k: self.obs[k][nxt] for k in keys},
            'discount': discount.astype(np.float32),
        }

    def sample(self, batch_size: int, rng: np.random.Generator) -> Dict[str, object]:
        return self.gather(self.sample_indices(batch_size, rng))


class MixedSampler:
    """Draws each batch from several samplers in fixed proportions (e.g. all data + live replay).

    The 'replay across experiments' recipe: a fixed share of fresh online data, the rest from every
    episode recorded so far. Samplers that cannot serve yet (empty) hand their share to the others.
    """

    def __init__(self, samplers: Sequence, fractions: Sequence[float]):
        if len(samplers) != len(fractions) or not samplers:
            raise ValueError('one fraction per sampler')
        if any(f < 0 for f in fractions) or sum(fractions) <= 0:
            raise ValueError('fractions must be >= 0 and not all zero')
        self.samplers = list(samplers)
        self.fractions = np.asarray(fractions, np.float64) / np.sum(fractions)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Dict[str, object]:
        ready = np.array([_ready(s) for s in self.samplers])
        if not ready.any():
            raise ReplayError('no sampler holds data yet')
        frac = np.where(ready, self.fractions, 0.0)
        if frac.sum() == 0:
            frac = ready.astype(np.float64)
        frac = frac / frac.sum()
        counts = np.floor(frac * batch_size).astype(int)
        counts[int(np.argmax(frac))] += batch_size - counts.sum()
        parts = [s.sample(int(c), rng) for s, c in zip(self.samplers, counts) if c > 0]
        return concat_batches(parts)


def _ready(sampler) -> bool:
    try:
        return len(sampler) > 0
    except TypeError:
        return True


def concat_batches(parts: Sequence[Mapping[str, object]]) -> Dict[str, object]:
    if len(parts) == 1:
        return dict(parts[0])
    out: Dict[str, object] = {}
    common = [k for k in parts[0] if all(k in p for p in parts[1:])]   # e.g. sampler-only extras
    for key in common:
        if isinstance(parts[0][key], Mapping):
            out[key] = {k: np.concatenate([p[key][k] for p in parts]) for k in parts[0][key]}
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out
