"""Episode events and commands: the JSON payloads of `episode/events` and `episode/command`.

A cell (sim bridge or real episode manager) owns the episode lifecycle and publishes
  start  -> when tick 0's observation is about to be published,
  end    -> after the last (400th) transition, with success and per-term returns,
  abort  -> when an episode stops early (operator, e-stop, watchdog, shutdown); its data is kept
            but flagged.
Anyone (the CHEF loop, an operator) asks for episodes with EpisodeCommand(op='start' | 'stop').
`tags` travel from the start command into every event of that episode, which is how the CHEF stage,
iteration, policy id and data source reach the recorder's metadata.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional

EVENT_TYPES = ('start', 'end', 'abort')
COMMAND_OPS = ('start', 'stop')
SOURCES = ('sim', 'real')
SCHEMA_VERSION = 1


class EventFormatError(ValueError):
    """A malformed event or command payload."""


def payload_from_json(cls, payload: str):
    """A dataclass from its JSON object: unknown keys, non-objects and bad JSON are EventFormatError."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise EventFormatError(f'{cls.__name__}: not JSON ({exc})') from None
    if not isinstance(data, dict):
        raise EventFormatError(f'{cls.__name__}: expected a JSON object')
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise EventFormatError(f'{cls.__name__}: unknown keys {sorted(unknown)}')
    try:
        return cls(**data)
    except TypeError as exc:
        raise EventFormatError(f'{cls.__name__}: {exc}') from None


@dataclass
class EpisodeEvent:
    event: str                       # start | end | abort
    episode_id: str
    cell: str                        # namespace of the cell, e.g. 'cell0'
    source: str                      # sim | real
    triplet: str                     # e.g. 'rgb_test_triplet1'
    seed: int
    stamp_ns: int                    # stamp of tick 0 (start) or of the last observation (end/abort)
    steps: int = 0                   # transitions completed so far
    objects: Optional[list] = None   # object ids (red, green, blue)
    success: Optional[bool] = None   # end only: episode-level success (docs/success.md)
    returns: Optional[Dict[str, float]] = None   # end only: sum over ticks of each reward term
    reason: str = ''                 # abort only
    tags: Dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.event not in EVENT_TYPES:
            raise EventFormatError(f'event must be one of {EVENT_TYPES}, got {self.event!r}')
        if self.source not in SOURCES:
            raise EventFormatError(f'source must be one of {SOURCES}, got {self.source!r}')

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, payload: str) -> 'EpisodeEvent':
        return payload_from_json(cls, payload)


@dataclass
class EpisodeCommand:
    op: str                          # start | stop
    triplet: str = ''                # '' = the cell's configured default
    seed: Optional[int] = None       # None = the cell's next seed
    tags: Dict[str, Any] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self):
        if self.op not in COMMAND_OPS:
            raise EventFormatError(f'op must be one of {COMMAND_OPS}, got {self.op!r}')

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, payload: str) -> 'EpisodeCommand':
        return payload_from_json(cls, payload)


def new_episode_id() -> str:
    return uuid.uuid4().hex
