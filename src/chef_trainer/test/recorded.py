"""Test data written by the real recorder core: a synthetic cell's messages (chef_recorder.synthetic,
serialized with rclpy exactly as DDS carries them) fed to chef_recorder's EpisodeRecorder, which
writes one MCAP bag per episode and catalogs it, as the recorder node does."""

from __future__ import annotations

from pathlib import Path

from rclpy.serialization import serialize_message

from chef_contract import topics as T
from chef_contract.ros import msg_class
from chef_recorder.catalog import Catalog
from chef_recorder.recording import EpisodeRecorder, RecorderSettings, roles_for_namespace
from chef_recorder.synthetic import PERIOD_NS, CellPublisher

T0_NS = 1_000 * 10**9


class _Clock:
    t = 0.0

    def __call__(self):
        return self.t


def _stamped(type_name: str) -> bool:
    fields = list(msg_class(type_name).get_fields_and_field_types().items())
    return bool(fields) and fields[0] == ('header', 'std_msgs/Header')


def record_synthetic_episodes(data_dir: Path, first: int, count: int, steps: int,
                              tags=None) -> int:
    """Record episodes first..first+count-1 (steps transitions each) into data_dir; returns count."""
    data_dir = Path(data_dir)
    cat = Catalog(str(data_dir)) if data_dir.is_dir() else None
    rec = EpisodeRecorder(
        RecorderSettings(data_dir=str(data_dir), cell='cell0', roles=roles_for_namespace('/cell0'),
                         fsync=False),
        on_published=lambda meta, path: Catalog(str(data_dir)).add_bag(path),
        clock=_Clock(), background=False)
    items = []
    cell = CellPublisher(None, cameras=(), image_px=8, cell='cell0', tags=tags,
                         sink=lambda name, msg: items.append((name, T.topic(name).msg_type,
                                                              serialize_message(msg))))
    stamped = {}
    t = T0_NS + first * (steps + 2) * PERIOD_NS
    recv = t
    for e in range(first, first + count):
        cell.event('start', f'ep{e:04d}', e, t)
        for k in range(steps + 1):
            cell.observation(e, k, t + k * PERIOD_NS)
            if k < steps:
                cell.command(e, k, t + k * PERIOD_NS)
        cell.event('end', f'ep{e:04d}', e, t + steps * PERIOD_NS, steps=steps, success=False)
        for name, msgtype, raw in items:
            s = stamped.setdefault(msgtype, _stamped(msgtype))
            rec.receive(f'/cell0/{name}', msgtype, raw, recv, s)
            recv += 1000
        items.clear()
        t += (steps + 2) * PERIOD_NS
    del cat
    return len(rec.published)
