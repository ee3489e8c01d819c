"""Approximate-time synchronisation of stamped messages (message_filters is not installable here).

`ApproximateTimeSync` keeps the last `queue_size` messages of each topic ordered by stamp (arrival
order does not matter). A *set* holds one message per topic; it is valid when the spread of its
stamps (max - min) is at most `slop_ns`. `latest(newer_than_ns)` returns the newest valid set whose
pivot - the stamp of the reference topic (the first one) - is newer than `newer_than_ns`, taking
from every other topic the message nearest to the pivot. With slop 0 a set needs identical stamps
(lockstep sims stamp every per-tick message with the same t_k). Keep slop below half the message
period, so a message can never be paired with the neighbouring tick.
"""

from __future__ import annotations

import bisect
from typing import Any, Dict, List, Optional, Sequence, Tuple


class ApproximateTimeSync:
    def __init__(self, topics: Sequence[str], slop_ns: int, queue_size: int = 10):
        if not topics:
            raise ValueError('ApproximateTimeSync needs at least one topic')
        if len(set(topics)) != len(topics):
            raise ValueError('duplicate topics')
        if slop_ns < 0 or queue_size < 1:
            raise ValueError('slop_ns must be >= 0 and queue_size >= 1')
        self.topics = tuple(topics)
        self.reference = self.topics[0]
        self.slop_ns = int(slop_ns)
        self.queue_size = int(queue_size)
        self._stamps: Dict[str, List[int]] = {t: [] for t in self.topics}
        self._msgs: Dict[str, List[Any]] = {t: [] for t in self.topics}

    def add(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Insert a message; a second message with the same stamp on a topic replaces the first."""
        stamps, msgs = self._stamps[topic], self._msgs[topic]
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            msgs[i] = msg
            return
        stamps.insert(i, stamp_ns)
        msgs.insert(i, msg)
        if len(stamps) > self.queue_size:
            del stamps[0]
            del msgs[0]

    def clear(self) -> None:
        for t in self.topics:
            self._stamps[t].clear()
            self._msgs[t].clear()

    def newest_stamp(self, topic: str) -> Optional[int]:
        s = self._stamps[topic]
        return s[-1] if s else None

    def _nearest(self, topic: str, stamp: int) -> Optional[int]:
        stamps = self._stamps[topic]
        if not stamps:
            return None
        i = bisect.bisect_left(stamps, stamp)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(stamps) and (best is None or abs(stamps[j] - stamp) < abs(stamps[best] - stamp)):
                best = j
        return best

    def latest(self, newer_than_ns: Optional[int] = None) -> Optional[Tuple[int, Dict[str, Any]]]:
        """Newest valid set with pivot stamp > newer_than_ns -> (pivot stamp, {topic: msg}), or None."""
        ref = self._stamps[self.reference]
        for r in range(len(ref) - 1, -1, -1):
            pivot = ref[r]
            if newer_than_ns is not None and pivot <= newer_than_ns:
                return None
            chosen = {self.reference: r}
            lo = hi = pivot
            for t in self.topics[1:]:
                j = self._nearest(t, pivot)
                if j is None:
                    return None              # a topic has no message at all: nothing can be complete
                s = self._stamps[t][j]
                lo, hi = min(lo, s), max(hi, s)
                if hi - lo > self.slop_ns:
                    break
                chosen[t] = j
            else:
                return pivot, {t: self._msgs[t][j] for t, j in chosen.items()}
        return None
