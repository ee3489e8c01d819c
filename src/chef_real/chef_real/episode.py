"""Episode lifecycle of a real cell (ROS-free core of the episode_manager node).

    idle --start--> resetting --(home, reset routine, servo ready)--> running --400 ticks--> idle
                        |                                                |  \\--stop/abort/pause/e-stop--> idle
                        \\-----------------stop/abort/failure------------/

The same EpisodeEvent JSON as the sim (chef_contract.events): `start` when tick 0 begins, `end` after
the 400th tick with per-term returns and success, `abort` with a reason when an episode stops early
(its data is kept but flagged). A reset that fails (planning, grasp) aborts the requested episode.

ResetPlanner turns the estimated object positions into a pick-and-drop routine that re-randomises
the objects like the benchmark's initial-state distribution (spec §B.9): each object (top-most
first) is picked and dropped from z = 0.12 m at a uniform position in the 0.2 x 0.2 m square, then the
gripper goes to a uniform random TCP pose pointing down.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from chef_contract import events as E
from chef_contract.spec import (
    EPISODE_STEPS, OBJECT_COLOURS, PROP_POSITION_HIGH_M, PROP_POSITION_LOW_M, REWARD_TERMS, TCP_POSITION_HIGH_M,
    TCP_POSITION_LOW_M, TCP_YAW_RANGE_RAD,
)

PHASES = ('idle', 'resetting', 'running')


def episode_success(final_terms: Mapping[str, float]) -> bool:
    """Episode-level success: the sparse success criterion holds at the final tick (spec §B.11, E.6)."""
    return float(final_terms.get('sparse_success', 0.0)) > 0.5


# --- reset routine ------------------------------------------------------------------------------
@dataclass
class MotionStep:
    kind: str                                   # 'home' | 'move' | 'gripper' | 'check_grasp'
    position_m: Optional[Tuple[float, float, float]] = None   # pinch (TCP) target in base_link
    yaw_rad: float = 0.0                        # gripper yaw about the vertical axis
    closed: bool = False                        # gripper target for kind 'gripper'
    note: str = ''


@dataclass
class ResetConfig:
    approach_height_m: float = 0.10      # above the object before descending
    grasp_depth_m: float = 0.0           # pinch below the estimated centre when grasping
    drop_height_m: float = PROP_POSITION_LOW_M[2]   # release height of the pinch (spec: z = 0.12 m)
    min_drop_separation_m: float = 0.07  # drop points at least this far apart (no stacks at reset)
    grasp_retry_yaw_rad: float = math.pi / 2   # second attempt turns the gripper by this much


class ResetPlanner:
    """Pick-and-drop steps that re-randomise the objects, reproducible from a seed."""

    def __init__(self, config: Optional[ResetConfig] = None):
        self.c = config or ResetConfig()

    def drop_points(self, rng: np.random.Generator, n: int = 3) -> List[np.ndarray]:
        lo, hi = np.array(PROP_POSITION_LOW_M[:2]), np.array(PROP_POSITION_HIGH_M[:2])
        points: List[np.ndarray] = []
        for _ in range(1000):
            p = rng.uniform(lo, hi)
            if all(np.linalg.norm(p - q) >= self.c.min_drop_separation_m for q in points):
                points.append(p)
                if len(points) == n:
                    return [np.array([p[0], p[1], self.c.drop_height_m]) for p in points]
        raise RuntimeError('cannot place drop points with the requested separation')

    def tcp_start_pose(self, rng: np.random.Generator) -> Tuple[np.ndarray, float]:
        p = rng.uniform(TCP_POSITION_LOW_M, TCP_POSITION_HIGH_M)
        return p, float(rng.uniform(*TCP_YAW_RANGE_RAD))

    def pick_and_drop(self, position_m: Sequence[float], drop_m: Sequence[float], yaw: float,
                      colour: str) -> List[MotionStep]:
        c = self.c
        x, y, z = (float(v) for v in position_m)
        grasp = (x, y, z - c.grasp_depth_m)
        above = (x, y, z + c.approach_height_m)
        drop = tuple(float(v) for v in drop_m)
        drop_above = (drop[0], drop[1], drop[2] + c.approach_height_m)
        return [
            MotionStep('gripper', closed=False, note=f'{colour}: open'),
            MotionStep('move', above, yaw, note=f'{colour}: above'),
            MotionStep('move', grasp, yaw, note=f'{colour}: descend'),
            MotionStep('gripper', closed=True, note=f'{colour}: close'),
            MotionStep('check_grasp', note=f'{colour}: grasped?'),
            MotionStep('move', above, yaw, note=f'{colour}: lift'),
            MotionStep('move', drop_above, yaw, note=f'{colour}: carry'),
            MotionStep('move', drop, yaw, note=f'{colour}: lower to z = {drop[2]:.2f} m'),
            MotionStep('gripper', closed=False, note=f'{colour}: drop'),
            MotionStep('move', drop_above, yaw, note=f'{colour}: retreat'),
        ]

    def plan(self, objects: Mapping[str, Sequence[float]], seed: int) -> List[Tuple[str, List[MotionStep]]]:
        """Full reset as named groups: ('home', ...), one group per colour (highest object first:
        a stacked red comes off the blue before the blue moves), ('start', random TCP pose).
        A failed colour group can be skipped (that object keeps its place); home/start cannot."""
        rng = np.random.default_rng(seed)
        missing = [c for c in OBJECT_COLOURS if c not in objects]
        if missing:
            raise ValueError(f'no position estimate for {missing}: cannot reset')
        groups: List[Tuple[str, List[MotionStep]]] = [('home', [MotionStep('home', note='home')])]
        drops = self.drop_points(rng, len(OBJECT_COLOURS))
        order = sorted(OBJECT_COLOURS, key=lambda c: -float(objects[c][2]))
        for colour, drop in zip(order, drops):
            yaw = float(rng.uniform(-math.pi / 4, math.pi / 4))
            groups.append((colour, self.pick_and_drop(objects[colour], drop, yaw, colour)))
        start, yaw = self.tcp_start_pose(rng)
        groups.append(('start', [MotionStep('gripper', closed=False, note='open'),
                                 MotionStep('move', tuple(float(v) for v in start), yaw, note='start pose')]))
        return groups


# --- lifecycle ----------------------------------------------------------------------------------
@dataclass
class Episode:
    episode_id: str
    triplet: str
    seed: int
    objects: List[str]
    tags: Dict[str, object]
    start_stamp_ns: int = 0
    steps: int = 0
    returns: Dict[str, float] = field(default_factory=lambda: {t: 0.0 for t in REWARD_TERMS})
    last_terms: Dict[str, float] = field(default_factory=dict)
    missing_terms: int = 0


class EpisodeLifecycle:
    """Thread-safe state machine; `emit(event)` is called for every EpisodeEvent."""

    def __init__(self, cell: str, triplet: str, objects: Sequence[str], emit: Callable[[E.EpisodeEvent], None],
                 first_seed: int = 0, episode_steps: int = EPISODE_STEPS):
        self.cell, self.triplet, self.objects = cell, triplet, list(objects)
        self.emit = emit
        self.next_seed = int(first_seed)
        self.episode_steps = int(episode_steps)
        self.phase = 'idle'
        self.paused = False
        self.estop = False
        self.current: Optional[Episode] = None
        self.pending: List[E.EpisodeCommand] = []
        self._lock = threading.RLock()

    # --- commands -----------------------------------------------------------------------------
    def command(self, cmd: E.EpisodeCommand, stamp_ns: int) -> Optional[str]:
        """Queue a start or act on a stop; returns a rejection reason or None."""
        with self._lock:
            if cmd.op == 'stop':
                self.pending.clear()
                self.abort('stop command', stamp_ns)
                return None
            if cmd.triplet and cmd.triplet != self.triplet:
                return (f'cell {self.cell} holds triplet {self.triplet!r} ({", ".join(self.objects)}); '
                        f'cannot run {cmd.triplet!r}')
            self.pending.append(cmd)
            return None

    def take_next(self) -> Optional[Episode]:
        """idle + a queued start + not paused/e-stopped -> the episode to reset for (phase resetting)."""
        with self._lock:
            if self.phase != 'idle' or self.paused or self.estop or not self.pending:
                return None
            cmd = self.pending.pop(0)
            seed = self.next_seed if cmd.seed is None else int(cmd.seed)
            self.next_seed = seed + 1
            self.current = Episode(E.new_episode_id(), self.triplet, seed, list(self.objects), dict(cmd.tags))
            self.phase = 'resetting'
            return self.current

    def reset_done(self, ok: bool, stamp_ns: int, reason: str = '') -> bool:
        """The reset routine finished; on success the episode starts (event 'start')."""
        with self._lock:
            ep = self.current
            if self.phase != 'resetting' or ep is None:
                return False                       # aborted meanwhile
            if not ok:
                self._finish('abort', stamp_ns, reason=f'reset failed: {reason}')
                return False
            ep.start_stamp_ns = stamp_ns
            self.phase = 'running'
            self.emit(self._event('start', stamp_ns))
            return True

    def tick(self, terms: Optional[Mapping[str, float]], stamp_ns: int) -> Optional[str]:
        """One control tick of a running episode with this tick's reward terms (None = missing).
        Returns 'end' when the episode just ended."""
        with self._lock:
            ep = self.current
            if self.phase != 'running' or ep is None:
                return None
            ep.steps += 1
            if terms is None:
                ep.missing_terms += 1
            else:
                ep.last_terms = dict(terms)
                for k in REWARD_TERMS:
                    ep.returns[k] += float(terms.get(k, 0.0))
            if ep.steps >= self.episode_steps:
                self._finish('end', stamp_ns)
                return 'end'
            return None

    def abort(self, reason: str, stamp_ns: int) -> bool:
        with self._lock:
            if self.phase == 'idle' or self.current is None:
                return False
            self._finish('abort', stamp_ns, reason=reason)
            return True

    def set_paused(self, paused: bool, stamp_ns: int):
        with self._lock:
            self.paused = bool(paused)
            if paused:
                self.abort('operator pause', stamp_ns)

    def set_estop(self, active: bool, stamp_ns: int):
        with self._lock:
            self.estop = bool(active)
            if active:
                self.pending.clear()
                self.abort('e-stop', stamp_ns)

    # --- events -------------------------------------------------------------------------------
    def _event(self, kind: str, stamp_ns: int, reason: str = '') -> E.EpisodeEvent:
        ep = self.current
        tags = dict(ep.tags)
        if ep.missing_terms:
            tags['missing_reward_ticks'] = ep.missing_terms
        ev = E.EpisodeEvent(event=kind, episode_id=ep.episode_id, cell=self.cell, source='real',
                            triplet=ep.triplet, seed=ep.seed, stamp_ns=int(stamp_ns), steps=ep.steps,
                            objects=list(ep.objects), reason=reason, tags=tags)
        if kind == 'end':
            ev.success = episode_success(ep.last_terms)
            ev.returns = {k: round(v, 6) for k, v in ep.returns.items()}
        if kind == 'abort':
            ev.returns = {k: round(v, 6) for k, v in ep.returns.items()}
        return ev

    def _finish(self, kind: str, stamp_ns: int, reason: str = ''):
        ev = self._event(kind, stamp_ns, reason)
        self.phase = 'idle'
        self.current = None
        self.emit(ev)
