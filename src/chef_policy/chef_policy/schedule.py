"""SAC-X intention schedules: which intention acts at each step of an episode.

Default (SAC-U): every `switch_every` steps an intention is drawn uniformly from `candidates`, with
an RNG seeded by the episode seed, so a schedule is reproducible from the episode metadata. An
episode's start-event tags override this:

    {'intention': 'staged'}                        fixed intention (name or index) for the episode
    {'intention_schedule': ['reach_grasp', 'lift']} one intention per segment, the last one repeats
    {'switch_every': 50}                           segment length in steps for this episode

Indices are positions in chef_contract.spec.INTENTIONS (the network heads' order).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Union

import numpy as np

from chef_contract.spec import EPISODE_STEPS, INTENTIONS

IntentionRef = Union[str, int]


class ScheduleError(ValueError):
    """An unknown intention name or index, or a bad switching period."""


def intention_index(ref: IntentionRef, n: int = len(INTENTIONS)) -> int:
    if isinstance(ref, bool):
        raise ScheduleError(f'not an intention: {ref!r}')
    if isinstance(ref, (int, np.integer)):
        if not 0 <= int(ref) < n:
            raise ScheduleError(f'intention index {ref} outside [0, {n})')
        return int(ref)
    if isinstance(ref, str):
        if ref.isdigit():
            return intention_index(int(ref), n)
        if ref not in INTENTIONS[:n]:
            raise ScheduleError(f'unknown intention {ref!r}; known: {list(INTENTIONS[:n])}')
        return INTENTIONS.index(ref)
    raise ScheduleError(f'not an intention: {ref!r}')


class IntentionSchedule:
    def __init__(self, candidates: Sequence[IntentionRef] = INTENTIONS, switch_every: int = 100,
                 fixed: Optional[IntentionRef] = None, n_intentions: int = len(INTENTIONS)):
        self.n = n_intentions
        self.candidates = [intention_index(c, self.n) for c in candidates]
        if not self.candidates:
            raise ScheduleError('no candidate intentions')
        self.default_switch_every = self._period(switch_every)
        self.default_fixed = None if fixed in (None, '') else intention_index(fixed, self.n)
        self.switch_every = self.default_switch_every
        self._segments: List[int] = []
        self._rng = np.random.default_rng(0)
        self.reset(0)

    @staticmethod
    def _period(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ScheduleError(f'switch_every must be a positive integer, got {value!r}')
        return int(value)

    def reset(self, seed: int, tags: Optional[Mapping[str, Any]] = None) -> None:
        """Start an episode: draw its schedule from `seed`, or take it from the event's `tags`."""
        tags = tags or {}
        self.switch_every = self._period(tags.get('switch_every', self.default_switch_every))
        self._rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5AC5])
        if tags.get('intention') not in (None, ''):
            self._segments = [intention_index(tags['intention'], self.n)]
            self._fixed = True
        elif tags.get('intention_schedule'):
            sched = tags['intention_schedule']
            if isinstance(sched, (str, bytes)) or not isinstance(sched, Sequence):
                raise ScheduleError('intention_schedule must be a list of intentions')
            self._segments = [intention_index(x, self.n) for x in sched]
            self._fixed = True
        elif self.default_fixed is not None:
            self._segments = [self.default_fixed]
            self._fixed = True
        else:
            n_seg = -(-EPISODE_STEPS // self.switch_every)
            self._segments = [int(x) for x in self._rng.choice(self.candidates, size=n_seg)]
            self._fixed = False

    def intention(self, step: int) -> int:
        """Intention index acting at `step` (0-based) of the current episode."""
        seg = max(0, int(step)) // self.switch_every
        if self._fixed:
            return self._segments[min(seg, len(self._segments) - 1)]
        while seg >= len(self._segments):          # episodes longer than EPISODE_STEPS
            self._segments.append(int(self._rng.choice(self.candidates)))
        return self._segments[seg]

    @property
    def segments(self) -> List[int]:
        return list(self._segments)
