"""Per-episode metadata: the fields, and their encoding in a bag's rosbag2 `custom_data` (ROS-free).

custom_data is a string -> string map, so every field is stored as `chef.<field>: <JSON value>`;
`from_custom_data` inverts it. The catalog is built from exactly this, which is why it can be rebuilt
from the bags alone. docs/data.md describes each field.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping

SCHEMA_VERSION = 1
PREFIX = 'chef.'

# name -> (default, description). Order = the order `chef data info` prints them.
FIELDS: Dict[str, tuple] = {
    'schema': (SCHEMA_VERSION, 'version of this metadata layout'),
    'episode_id': ('', 'id from the episode events (unique per data set)'),
    'cell': ('', 'cell namespace that produced it (cell0, ...)'),
    'source': ('', 'sim | real'),
    'triplet': ('', 'object triplet, e.g. rgb_test_triplet1'),
    'objects': (None, 'object ids (red, green, blue)'),
    'seed': (None, 'episode seed'),
    'policy_id': ('', 'behaviour policy id (policy/info, else the start tags)'),
    'checkpoint_sha256': ('', 'sha256 of the behaviour checkpoint (policy/info)'),
    'policy_changes': (0, 'times policy/info changed during the episode (hot reloads)'),
    'stage': ('', 'CHEF stage: collect | explore | execute | finetune | ... (start tags)'),
    'iteration': (None, 'CHEF iteration (start tags)'),
    'intention_schedule': ([], 'SAC-X intention runs [[first tick, intention], ...] (policy/step_info)'),
    'returns': ({}, 'sum over transitions of each reward term (end event; else recomputed)'),
    'returns_recorded': ({}, 'the same sums recomputed from the recorded reward/terms'),
    'success': (None, 'episode-level success (end event)'),
    'config_hash': ('', 'hash of the run configuration (start tags)'),
    'code_revision': ('', 'git revision of the code (start tags, else the recorder\'s checkout)'),
    'tags': ({}, 'all tags of the start event'),
    'status': ('', 'end | abort | superseded | stalled | shutdown | recovered'),
    'complete': (False, 'ended by an end event and no tick missing'),
    'abort_reason': ('', 'why it stopped early'),
    'steps': (0, 'transitions the cell reported (end event), else recorded'),
    'steps_recorded': (0, 'transitions recorded (ticks - 1)'),
    'start_stamp_ns': (0, 'stamp of tick 0 (cell clock: sim or wall)'),
    'end_stamp_ns': (0, 'stamp of the last observation'),
    'clock': ('', 'sim | wall: which clock stamped the messages'),
    'recorded_unix_ns': (0, 'wall time when the recorder opened the bag'),
    'topics': ({}, 'messages per topic'),
    'message_count': (0, 'messages in the bag'),
    'bytes': (0, 'payload bytes in the bag'),
    'dropped_messages': (0, 'messages lost between publisher and recorder (sequence gaps)'),
    'dropped_by_topic': ({}, 'the same per topic'),
    'incomplete_ticks': (0, 'ticks where a per-tick topic has no message'),
    'missing_ticks': (0, 'ticks the cell reported but that were not recorded'),
    'missed_period_ticks': (0, 'tick intervals longer than (1 + tolerance) x control period'),
    'max_tick_interval_s': (0.0, 'longest interval between consecutive ticks'),
    'achieved_rate_hz': (0.0, 'ticks per second of stamp time'),
    'rate_ok': (True, 'missed_period_ticks <= the recorder\'s max_missed_ticks'),
    'latency_ms_p50': (None, 'receive - header stamp, median (wall-clock cells only)'),
    'latency_ms_p99': (None, 'receive - header stamp, 99th percentile (wall-clock cells only)'),
    'recorder': ({}, 'recorder node, host and version'),
    'recovered_from': ('', 'repair: the partial or corrupt bag this was recovered from'),
    'merged_from': ('', 'restart: the dead recorder\'s partial bag taken over (messages, where reading stopped)'),
}


def defaults() -> Dict[str, Any]:
    return {k: json.loads(json.dumps(v[0])) for k, v in FIELDS.items()}


def to_custom_data(meta: Mapping[str, Any]) -> Dict[str, str]:
    """Episode metadata -> rosbag2 custom_data (str -> str)."""
    out = {}
    for k, v in meta.items():
        out[PREFIX + k] = json.dumps(v, sort_keys=True, default=_jsonable)
    return out


def from_custom_data(custom: Mapping[str, str] | None) -> Dict[str, Any]:
    """rosbag2 custom_data -> episode metadata (fields absent in old bags get their defaults)."""
    meta = defaults()
    for k, v in (custom or {}).items():
        if not k.startswith(PREFIX):
            continue
        try:
            meta[k[len(PREFIX):]] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            meta[k[len(PREFIX):]] = v
    return meta


def _jsonable(v):
    if hasattr(v, 'tolist'):
        return v.tolist()
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)
