"""Typed JSON payloads of the contract's `std_msgs/String` topics other than the episode events.

One dataclass per topic, written by one node and read by others, so no node builds a dict that
another reads back by key:

  StepInfo                policy/step_info   policy -> recorder, dataset reader (one per tick)
  PolicyInfo              policy/info        policy -> chef loop (readiness), recorder (metadata)
  CheckpointAnnouncement  trainer/checkpoint trainer -> policy (hot reload)
  RecorderStatus          recorder/status    recorder -> sim bridge (wait_for_recorder), chef status
  SafetyStatus            safety/status      safety filter -> operators, chef status
  FleetProgress           /chef_loop/progress  chef loop's CellFleet -> chef status (jobs done / wanted)

Each has `to_json()` / `from_json(payload)`; `from_json` rejects unknown keys and wrong types with
`EventFormatError` (chef_contract.events), like EpisodeEvent and EpisodeCommand do. ROS-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from chef_contract.events import EventFormatError, payload_from_json
from chef_contract.spec import ACTION_DIM, INTENTIONS


def _check_int(cls: str, name: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventFormatError(f'{cls}: {name} must be an integer, got {value!r}')


@dataclass
class StepInfo:
    """policy/step_info: what the policy did on one control tick.

    `stamp_ns` is the stamp of the observation it acted on (the tick), which is how the recorder
    routes the message to its episode and the dataset reader pairs it with the tick's command. A
    zero command (no policy, unusable observation, failed action) has `zero_reason` set and no
    action / tick / intention."""

    stamp_ns: int                          # tick stamp, ns (observation acted on)
    episode_id: str = ''                   # the episode the policy believes it is in ('' = none yet)
    tick: Optional[int] = None             # the policy's tick counter within the episode
    intention: Optional[int] = None        # SAC-X intention index into spec.INTENTIONS
    intention_name: str = ''
    action: Optional[List[float]] = None   # normalised agent action in [-1, 1]^5 (spec action layout)
    inference_ms: Optional[float] = None   # network forward time, ms
    latency_ms: Optional[float] = None     # observation in -> command out, ms
    zero_reason: str = ''                  # why a zero command was sent instead ('' = it acted)
    policy_id: str = ''
    checkpoint_sha256: str = ''

    def __post_init__(self):
        cls = type(self).__name__
        _check_int(cls, 'stamp_ns', self.stamp_ns)
        _check_int(cls, 'tick', self.tick, optional=True)
        if isinstance(self.intention, str):       # writers before the typed payload sent the name
            if self.intention not in INTENTIONS:
                raise EventFormatError(f'{cls}: unknown intention {self.intention!r}')
            self.intention = INTENTIONS.index(self.intention)
        _check_int(cls, 'intention', self.intention, optional=True)
        if self.intention is not None and not 0 <= self.intention < len(INTENTIONS):
            raise EventFormatError(f'{cls}: intention {self.intention} outside 0..{len(INTENTIONS) - 1}')
        if self.action is not None:
            if (not isinstance(self.action, (list, tuple)) or len(self.action) != ACTION_DIM
                    or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in self.action)):
                raise EventFormatError(f'{cls}: action must be {ACTION_DIM} numbers, got {self.action!r}')
            self.action = [float(a) for a in self.action]

    @property
    def acted(self) -> bool:
        return self.action is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, payload: str) -> 'StepInfo':
        return payload_from_json(cls, payload)

    @classmethod
    def acted_on(cls, stamp_ns: int, tick: int, intention: int, action, inference_ms: float,
                 latency_ms: float, episode_id: str, policy_id: str,
                 checkpoint_sha256: str) -> 'StepInfo':
        """The step info of a tick the policy acted on (numbers rounded for the wire)."""
        return cls(stamp_ns=int(stamp_ns), tick=int(tick), episode_id=episode_id, intention=int(intention),
                   intention_name=INTENTIONS[intention] if 0 <= intention < len(INTENTIONS) else str(intention),
                   action=[round(float(x), 6) for x in action], inference_ms=round(float(inference_ms), 3),
                   latency_ms=round(float(latency_ms), 3), policy_id=policy_id,
                   checkpoint_sha256=checkpoint_sha256)

    @classmethod
    def zero(cls, stamp_ns: int, reason: str, episode_id: str, policy_id: str) -> 'StepInfo':
        """The step info of a zero command sent for `reason` instead of acting."""
        return cls(stamp_ns=int(stamp_ns), episode_id=episode_id, zero_reason=reason, policy_id=policy_id)


@dataclass
class PolicyInfo:
    """policy/info (latched): the policy a policy node acts with, republished on every change."""

    policy_id: str                         # 'none' = no policy loaded
    checkpoint_sha256: str = ''
    kind: str = ''                         # 'network' | 'scripted' ('' when none)
    source: str = ''                       # checkpoint path or the scripted expert's class
    config: Dict[str, Any] = field(default_factory=dict)   # the policy's own config (network, noise)
    warmup_ms: float = 0.0
    deterministic: bool = False
    timing: str = ''                       # 'lockstep' | 'tick' | 'realtime'
    load_error: str = ''                   # the last failed (re)load, '' if none
    swaps: int = 0                         # hot reloads that took effect
    inputs_ready: bool = False             # a complete set of its inputs arrived and episode/events has a
                                           # publisher: it can act on an episode's first tick
    published_unix: float = 0.0            # wall time of this message, s

    def __post_init__(self):
        if not isinstance(self.policy_id, str):
            raise EventFormatError(f'PolicyInfo: policy_id must be a string, got {self.policy_id!r}')
        if not isinstance(self.config, dict):
            raise EventFormatError('PolicyInfo: config must be an object')

    @property
    def ready(self) -> bool:
        """A policy is loaded and its last load did not fail."""
        return self.policy_id not in ('', 'none') and not self.load_error

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, payload: str) -> 'PolicyInfo':
        return payload_from_json(cls, payload)


@dataclass
class CheckpointAnnouncement:
    """trainer/checkpoint: the newest checkpoint a trainer wrote; the policy node hot-reloads it."""

    path: str                              # checkpoint file (absolute, on a filesystem the policy sees)
    sha256: str = ''                       # '' = not checked by the loader
    step: int = 0                          # learner updates behind it
    algorithm: str = ''
    run_dir: str = ''
    stamp_unix: float = 0.0                # wall time of the announcement, s

    def __post_init__(self):
        if not isinstance(self.path, str) or not self.path:
            raise EventFormatError(f'CheckpointAnnouncement: path must be a non-empty string, got {self.path!r}')
        if not isinstance(self.sha256, str):
            raise EventFormatError('CheckpointAnnouncement: sha256 must be a string')
        _check_int('CheckpointAnnouncement', 'step', self.step)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, payload: str) -> 'CheckpointAnnouncement':
        return payload_from_json(cls, payload)


@dataclass
class RecorderStatus:
    """recorder/status (latched): whether the recorder is matched on every topic it requires."""

    ready: bool
    unmatched: Dict[str, str] = field(default_factory=dict)   # topic -> why ('no publisher', ...)
    pid: int = 0
    node: str = ''
    dropped_messages: int = 0            # since the recorder started: sequence gaps over every topic
    episodes_published: int = 0          # bags published since the recorder started

    def __post_init__(self):
        if not isinstance(self.ready, bool):
            raise EventFormatError(f'RecorderStatus: ready must be true or false, got {self.ready!r}')
        if not isinstance(self.unmatched, dict):
            raise EventFormatError('RecorderStatus: unmatched must be an object')
        _check_int('RecorderStatus', 'dropped_messages', self.dropped_messages)
        _check_int('RecorderStatus', 'episodes_published', self.episodes_published)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, payload: str) -> 'RecorderStatus':
        return payload_from_json(cls, payload)


SAFETY_STATES = ('ok', 'stale', 'estop')      # chef_policy.safety.STATES


@dataclass
class SafetyStatus:
    """safety/status (latched, and a heartbeat): what the safety filter is doing."""

    state: str                             # ok | stale | estop
    estop: bool = False                    # the e-stop is latched (only the reset service clears it)
    estop_reason: str = ''
    estop_input: bool = False              # the last value on safety/estop
    last_command_stamp_ns: int = 0
    command_silent: bool = True            # no twist within the command timeout (watchdog's view)
    last_rejection: Optional[Dict[str, Any]] = None     # command, reason, stamp_ns of the last refusal
    counters: Dict[str, int] = field(default_factory=dict)   # clamped / zeroed / rejected commands

    def __post_init__(self):
        if self.state not in SAFETY_STATES:
            raise EventFormatError(f'SafetyStatus: state must be one of {SAFETY_STATES}, got {self.state!r}')
        _check_int('SafetyStatus', 'last_command_stamp_ns', self.last_command_stamp_ns)
        if not isinstance(self.counters, dict):
            raise EventFormatError('SafetyStatus: counters must be an object')

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, payload: str) -> 'SafetyStatus':
        return payload_from_json(cls, payload)


@dataclass
class FleetProgress:
    """/chef_loop/progress (latched): the episode jobs the CHEF loop's CellFleet is running in its
    session (one stage's batch, e.g. collect/scripted or execute of one candidate), republished
    whenever a job starts or finishes. `stage`, `iteration` and `label` come from the jobs' tags."""

    jobs: int                              # episodes this session was asked for
    done: int = 0                          # finished (ended or given up), retries not counted twice
    succeeded: int = 0                     # ended with success
    failed: int = 0                        # given up after the retries
    running: Dict[str, str] = field(default_factory=dict)   # cell -> triplet it is running
    stage: str = ''
    iteration: Optional[int] = None
    label: str = ''                        # data_source / candidate policy of the batch
    pid: int = 0                           # the loop's process
    stamp_unix: float = 0.0

    def __post_init__(self):
        for name in ('jobs', 'done', 'succeeded', 'failed', 'pid'):
            _check_int('FleetProgress', name, getattr(self, name))
        _check_int('FleetProgress', 'iteration', self.iteration, optional=True)
        if not isinstance(self.running, dict):
            raise EventFormatError('FleetProgress: running must be an object')

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, payload: str) -> 'FleetProgress':
        return payload_from_json(cls, payload)


__all__ = ['CheckpointAnnouncement', 'EventFormatError', 'FleetProgress', 'PolicyInfo', 'RecorderStatus',
           'SafetyStatus', 'StepInfo']
