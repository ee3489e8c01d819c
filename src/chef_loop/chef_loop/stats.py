"""Success statistics with honest intervals (no peer ships them; peers.md §4 pain 16)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    successes: int
    trials: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.successes / self.trials if self.trials else float('nan')

    def __str__(self) -> str:
        if not self.trials:
            return 'n/a (0 episodes)'
        return (f'{100 * self.value:5.1f} % [{100 * self.low:5.1f}, {100 * self.high:5.1f}] '
                f'({self.successes}/{self.trials})')

    def to_dict(self) -> Dict[str, float]:
        return {'successes': self.successes, 'trials': self.trials, 'rate': self.value,
                'low': self.low, 'high': self.high}


def wilson(successes: int, trials: int, z: float = Z95) -> Rate:
    """Wilson score interval for a binomial proportion (95 % by default).

    Unlike the normal approximation it stays inside [0, 1] and is informative at 0/n and n/n,
    which is where small robot evaluations live.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f'invalid counts {successes}/{trials}')
    if trials == 0:
        return Rate(0, 0, 0.0, 1.0)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # the interval holds the observed rate exactly (at n/n the rounded centre + half is 1 - 1e-16)
    return Rate(successes, trials, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def success_table(outcomes: Iterable[Tuple[str, bool]]) -> Dict[str, Rate]:
    """(triplet, success) pairs -> {triplet: Rate} plus 'mean' pooled over all episodes."""
    counts: Dict[str, List[int]] = {}
    for triplet, ok in outcomes:
        c = counts.setdefault(triplet, [0, 0])
        c[0] += int(bool(ok))
        c[1] += 1
    table = {k: wilson(s, n) for k, (s, n) in sorted(counts.items())}
    total_s = sum(s for s, _ in counts.values())
    total_n = sum(n for _, n in counts.values())
    table['mean'] = wilson(total_s, total_n)
    return table


def mean_over_triplets(table: Mapping[str, Rate], triplets: Sequence[str]) -> float:
    """Unweighted mean success over the given triplets (the benchmark's 'mean over 5 triplets')."""
    vals = [table[t].value for t in triplets if t in table and table[t].trials]
    return sum(vals) / len(vals) if vals else float('nan')
