"""Temporal ensembling of action chunks (Zhao et al. 2023, "ACT"), without ROS.

An actor with `NetworkConfig.action_horizon` H > 1 predicts, at every tick, the distributions of the
next H commands. Acting on only the newest prediction would throw away what earlier ticks said
about this one; `TemporalEnsemble` keeps the last H chunks and gives each tick the average of every
prediction that covers it: arm means and gripper probabilities averaged with equal weights (equal
weights stacked best on validation scenes: bench/results/experiments/README.md, "Action chunking"),
the arm spread of the newest prediction (what the policy is unsure of now).
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Tuple

import torch


class TemporalEnsemble:
    """Per-episode buffer of the last `horizon` chunks; `push` one chunk per tick, get the tick's
    (mean [K, 4], std [K, 4], logits [K, 2])."""

    def __init__(self, horizon: int):
        if horizon < 1:
            raise ValueError('horizon must be >= 1')
        self.horizon = int(horizon)
        self.tick = 0
        self._chunks: Deque[Tuple[int, torch.Tensor, torch.Tensor]] = deque()

    def reset(self) -> None:
        """A new episode: forget every chunk."""
        self.tick = 0
        self._chunks.clear()

    def push(self, mean: torch.Tensor, std: torch.Tensor, logits: torch.Tensor):
        """Add this tick's chunk (mean [K, H, 4], std [K, H, 4], logits [K, H, 2]); returns the
        ensembled distribution of this tick's command and advances to the next tick."""
        if mean.shape[-2] != self.horizon:
            raise ValueError(f'a chunk of {mean.shape[-2]} steps, the ensemble holds {self.horizon}')
        self._chunks.append((self.tick, mean, torch.softmax(logits, -1)))
        while self.tick - self._chunks[0][0] >= self.horizon:
            self._chunks.popleft()
        means = torch.stack([m[..., self.tick - t, :] for t, m, _ in self._chunks])
        probs = torch.stack([p[..., self.tick - t, :] for t, _, p in self._chunks])
        self.tick += 1
        return means.mean(0), std[..., 0, :], probs.mean(0).clamp_min(1e-8).log()

    def __len__(self) -> int:
        return len(self._chunks)
