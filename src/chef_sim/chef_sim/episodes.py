"""ROS-free core of the sim bridge: command validation and the episode lifecycle of one cell.

`validate_twist` / `validate_gripper` decide whether a command may reach the physics (NaN, inf,
out-of-range values and wrong frames are refused with a reason). `EpisodeRunner` owns the env and
one episode at a time: `start` resets and builds the start event, `step` advances one tick and
accumulates the per-term returns, `finish` / `abort` build the end / abort events. The node in
bridge_node.py only moves messages in and out of these.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from chef_contract import topics as T
from chef_contract.action import from_command
from chef_contract.events import EpisodeEvent, new_episode_id
from chef_contract.spec import (
    GRIPPER_CLOSED_POSITION_RAD, GRIPPER_OPEN_POSITION_RAD, MAX_LINEAR_SPEED_MPS, MAX_YAW_RATE_RPS,
    REWARD_TERMS,
)
from chef_sim.env import RgbStackingEnv

RANGE_TOLERANCE = 1e-6            # relative slack on the limits for float rounding on the wire
SEED_STRIDE_PER_CELL = 1_000_003  # cell N draws episode seeds from seed + N * stride + i


class InvalidCommand(ValueError):
    """A command that must not reach the physics; the message says why."""


def validate_twist(linear: Sequence[float], angular: Sequence[float], frame_id: str) -> Tuple[np.ndarray, float]:
    """TwistStamped values -> (linear m/s (3,), yaw rad/s). Raises InvalidCommand.

    Accepted: finite values, frame '' or base_link, |v_i| <= 0.07 m/s per axis (the benchmark's
    action bounds; the norm is scaled later, spec X1), |w_z| <= 1 rad/s. Roll/pitch rates are
    ignored (the cell keeps the gripper pointing down) but must be finite.
    """
    lin = np.asarray(linear, np.float64)
    ang = np.asarray(angular, np.float64)
    if not (np.all(np.isfinite(lin)) and np.all(np.isfinite(ang))):
        raise InvalidCommand(f'twist has NaN/inf: linear {lin.tolist()}, angular {ang.tolist()}')
    if frame_id not in ('', T.WORLD_FRAME):
        raise InvalidCommand(f'twist frame {frame_id!r} is not {T.WORLD_FRAME!r}')
    if np.any(np.abs(lin) > MAX_LINEAR_SPEED_MPS * (1 + RANGE_TOLERANCE)):
        raise InvalidCommand(f'linear velocity {lin.tolist()} m/s exceeds +-{MAX_LINEAR_SPEED_MPS} per axis')
    if abs(ang[2]) > MAX_YAW_RATE_RPS * (1 + RANGE_TOLERANCE):
        raise InvalidCommand(f'yaw rate {ang[2]} rad/s exceeds +-{MAX_YAW_RATE_RPS}')
    return lin, float(ang[2])


def validate_gripper(data: Sequence[float]) -> float:
    """Float64MultiArray data -> finger target (rad). Raises InvalidCommand."""
    values = list(data)
    if len(values) != 1:
        raise InvalidCommand(f'gripper command needs exactly 1 value (finger_joint rad), got {len(values)}')
    v = float(values[0])
    if not math.isfinite(v):
        raise InvalidCommand(f'gripper command is not finite: {v}')
    lo, hi = GRIPPER_OPEN_POSITION_RAD, GRIPPER_CLOSED_POSITION_RAD
    slack = (hi - lo) * RANGE_TOLERANCE
    if not lo - slack <= v <= hi + slack:
        raise InvalidCommand(f'gripper target {v} rad outside [{lo}, {hi}]')
    return v


def command_to_action(linear_mps: np.ndarray, yaw_rps: float, gripper_rad: float) -> np.ndarray:
    """Validated commands -> the env's 5-D action in [-1, 1] (chef_contract.action)."""
    return from_command(linear_mps, yaw_rps, gripper_rad)


def cell_index(cell: str) -> int:
    m = re.search(r'(\d+)$', cell)
    return int(m.group(1)) if m else 0


@dataclass
class Episode:
    episode_id: str
    triplet: str
    seed: int
    objects: Tuple[str, str, str]
    tags: Dict[str, Any]
    start_stamp_ns: int
    steps: int = 0
    returns: Dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in REWARD_TERMS})
    success: bool = False


class EpisodeRunner:
    """Runs episodes of one cell's env and produces the contract's episode events."""

    def __init__(self, env: RgbStackingEnv, cell: str, base_seed: int = 0):
        self.env = env
        self.cell = cell
        self.base_seed = int(base_seed) + SEED_STRIDE_PER_CELL * cell_index(cell)
        self.started = 0                     # episodes started so far
        self.episode: Optional[Episode] = None
        self.frame: Dict[str, np.ndarray] = {}
        self.terms: Dict[str, float] = {k: 0.0 for k in REWARD_TERMS}

    @property
    def running(self) -> bool:
        return self.episode is not None

    @property
    def steps_left(self) -> int:
        return self.env.config.episode_steps - (self.episode.steps if self.episode else 0)

    def start(self, stamp_ns: int, triplet: str = '', seed: Optional[int] = None,
              tags: Optional[Dict[str, Any]] = None) -> EpisodeEvent:
        """Reset the env (tick 0); returns the start event. `frame` holds tick 0's observation."""
        if self.running:
            raise RuntimeError('an episode is already running')
        if seed is None:
            seed = self.base_seed + self.started
        _, info = self.env.reset(seed=int(seed), triplet=triplet or None)
        self.started += 1
        self.episode = Episode(new_episode_id(), info['triplet'], int(seed), tuple(info['objects']),
                               dict(tags or {}), int(stamp_ns))
        self.frame = info['frame']
        self.terms = {k: 0.0 for k in REWARD_TERMS}       # no transition led to tick 0
        return self._event('start', stamp_ns)

    def step(self, action: np.ndarray) -> bool:
        """One transition; `frame` / `terms` then describe the new tick. True when the episode is over."""
        if not self.running:
            raise RuntimeError('no episode is running')
        _, _, _, truncated, info = self.env.step(action)
        ep = self.episode
        ep.steps += 1
        self.frame = info['frame']
        self.terms = dict(info['reward_terms'])
        for k, v in self.terms.items():
            ep.returns[k] += float(v)
        ep.success = bool(info['success'])
        return bool(truncated)

    def finish(self, stamp_ns: int) -> EpisodeEvent:
        """End event after the last transition: success = sparse success at the final step."""
        event = self._event('end', stamp_ns, success=self.episode.success,
                            returns={k: round(v, 6) for k, v in self.episode.returns.items()})
        self.episode = None
        return event

    def abort(self, stamp_ns: int, reason: str) -> Optional[EpisodeEvent]:
        if not self.running:
            return None
        event = self._event('abort', stamp_ns, reason=reason,
                            returns={k: round(v, 6) for k, v in self.episode.returns.items()})
        self.episode = None
        return event

    def _event(self, kind: str, stamp_ns: int, **extra) -> EpisodeEvent:
        ep = self.episode
        return EpisodeEvent(event=kind, episode_id=ep.episode_id, cell=self.cell, source='sim',
                            triplet=ep.triplet, seed=ep.seed, stamp_ns=int(stamp_ns), steps=ep.steps,
                            objects=list(ep.objects), tags=dict(ep.tags), **extra)
