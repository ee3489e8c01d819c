"""Alignment by control tick, not by arrival time (ROS-free). docs/data.md states the rule in prose.

Tick stamps t_0 < t_1 < ... < t_T of an episode:
  * the header stamps of the behaviour policy's commands (policy/twist_cmd; the executed
    servo_node/delta_twist_cmds when the raw command was not recorded) inside [start, end), followed by
    the end event's stamp (the last observation, which has no action);
  * with no command recorded, the stamps of the reference observation topic (joint_states).
Per tick k and per observation topic: the latest message with header stamp in (t_k - slop, t_k]
(slop = one control period by default). In lockstep sims every per-tick message is stamped exactly
t_k, so this picks the message of tick k; on real cells with asynchronous sensors it picks the newest
sample the policy could have seen. The action of tick k is the command stamped t_k; the reward of
transition k is reward/terms aligned to t_{k+1} (computed on the observation after the action).
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np

NS = 1_000_000_000


def tick_stamps(command_stamps: Iterable[int], obs_stamps: Iterable[int], start_ns: int,
                end_ns: Optional[int]) -> np.ndarray:
    """The tick stamps of an episode (int64 ns), see the module docstring."""
    hi = np.iinfo(np.int64).max if end_ns is None else int(end_ns)
    cmd = np.unique(np.fromiter((int(s) for s in command_stamps), np.int64))
    cmd = cmd[(cmd >= start_ns) & (cmd < hi)]
    obs = np.unique(np.fromiter((int(s) for s in obs_stamps), np.int64))
    obs = obs[(obs >= start_ns) & (obs <= hi)]
    if cmd.size == 0:
        return obs
    if end_ns is not None:
        return np.append(cmd, np.int64(end_ns))
    later = obs[obs > cmd[-1]]           # episode without end (crash): the next observation, if any
    return np.append(cmd, later[:1])


def align_latest(stamps: np.ndarray, ticks: np.ndarray, slop_ns: int) -> np.ndarray:
    """Index into sorted `stamps` of the latest stamp in (t - slop, t] for each tick, else -1."""
    stamps = np.asarray(stamps, np.int64)
    ticks = np.asarray(ticks, np.int64)
    if stamps.size == 0:
        return np.full(ticks.shape, -1, np.int64)
    idx = np.searchsorted(stamps, ticks, side='right') - 1
    ok = idx >= 0
    ok[ok] &= stamps[idx[ok]] > ticks[ok] - slop_ns
    return np.where(ok, idx, -1)


def interval_stats(ticks: np.ndarray, period_s: float, tolerance: float) -> Tuple[int, float, float]:
    """(intervals longer than (1 + tolerance) * period, longest interval s, achieved rate Hz)."""
    ticks = np.asarray(ticks, np.int64)
    if ticks.size < 2:
        return 0, 0.0, 0.0
    d = np.diff(ticks) / NS
    missed = int(np.sum(d > (1.0 + tolerance) * period_s))
    span = (ticks[-1] - ticks[0]) / NS
    rate = (ticks.size - 1) / span if span > 0 else 0.0
    return missed, float(d.max()), float(rate)


def interval_ok(ticks: np.ndarray, period_s: float, tolerance: float) -> np.ndarray:
    """Per transition k: t_{k+1} - t_k <= (1 + tolerance) * period (no tick lost in between)."""
    d = np.diff(np.asarray(ticks, np.int64)) / NS
    return d <= (1.0 + tolerance) * period_s


def nearest(sorted_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the nearest element of sorted `sorted_times` for each of `times` (-1 if empty)."""
    sorted_times = np.asarray(sorted_times, np.int64)
    times = np.asarray(times, np.int64)
    if sorted_times.size == 0:
        return np.full(times.shape, -1, np.int64)
    right = np.clip(np.searchsorted(sorted_times, times), 0, sorted_times.size - 1)
    left = np.clip(right - 1, 0, sorted_times.size - 1)
    pick_left = np.abs(times - sorted_times[left]) <= np.abs(sorted_times[right] - times)
    return np.where(pick_left, left, right)
