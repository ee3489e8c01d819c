"""Shared helpers: a synthetic cell's messages serialized with rclpy (exact DDS bytes) and fed to the
recorder core, so boundary logic is tested without timing noise; DDS tests use the real node."""

from __future__ import annotations

import time
from typing import Callable, List, Optional, Tuple

import pytest
from rclpy.serialization import serialize_message

from chef_contract import topics as T
from chef_contract.ros import msg_class
from chef_recorder.recording import EpisodeRecorder, RecorderSettings, TopicRoles, roles_for_namespace
from chef_recorder.synthetic import PERIOD_NS, CellPublisher

NS = '/cell0'
CAMS = ('basket_front_left', 'basket_front_right')


def full(name: str, ns: str = NS) -> str:
    return f'{ns}/{name}'


def roles(ns: str = NS) -> TopicRoles:
    return roles_for_namespace(ns)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _stamped(type_name: str) -> bool:
    fields = list(msg_class(type_name).get_fields_and_field_types().items())
    return bool(fields) and fields[0] == ('header', 'std_msgs/Header')


class Stream:
    """Collects a synthetic cell's messages as (contract name, type, CDR bytes) in publish order."""

    def __init__(self, cameras=CAMS, image_px: int = 8, cell: str = 'cell0', tags=None):
        self.items: List[Tuple[str, str, bytes]] = []
        self.cell = CellPublisher(None, cameras, image_px, sink=self._sink, cell=cell, tags=tags)

    def _sink(self, name, msg):
        self.items.append((name, T.topic(name).msg_type, serialize_message(msg)))

    def take(self) -> List[Tuple[str, str, bytes]]:
        out, self.items = self.items, []
        return out

    def episode(self, e: int, steps: int, t0_ns: int, episode_id: Optional[str] = None,
                end: str = 'end', executed: bool = True) -> int:
        """Publish a whole episode (start, ticks 0..steps, end); returns the next free stamp."""
        eid = episode_id or f'ep{e:03d}'
        self.cell.event('start', eid, e, t0_ns)
        for k in range(steps + 1):
            t = t0_ns + k * PERIOD_NS
            self.cell.observation(e, k, t)
            if k < steps:
                self.cell.command(e, k, t, executed=executed)
        t_end = t0_ns + steps * PERIOD_NS
        if end:
            self.cell.event(end, eid, e, t_end, steps=steps, success=bool(e % 2),
                            reason='operator' if end == 'abort' else '')
        return t_end + PERIOD_NS


def bag_meta(path):
    """The episode metadata of a published bag."""
    from chef_recorder.bagio import read_bag_metadata
    from chef_recorder.metadata import from_custom_data
    return from_custom_data(read_bag_metadata(path).get('custom_data'))


def ticks_in_bag(path):
    """Sorted (episode marker, tick marker) of the joint_states messages of a bag."""
    from chef_recorder.bagio import deserialize, iter_messages
    out = []
    for m in iter_messages(path, topics=[full(T.JOINT_STATES)]):
        js = deserialize(m.raw, m.msgtype)
        out.append((int(round(js.position[1])), int(round(js.position[0]))))
    return sorted(out)


_STAMPED = {}


def feed(rec: EpisodeRecorder, items, ns: str = NS, recv_ns: Optional[int] = None,
         before: Optional[Callable] = None) -> None:
    recv = recv_ns or time.time_ns()
    for name, msgtype, raw in items:
        if before is not None:
            before(name)
        stamped = _STAMPED.setdefault(msgtype, _stamped(msgtype))
        rec.receive(full(name, ns), msgtype, raw, recv, stamped)
        recv += 1000


@pytest.fixture
def make_recorder(tmp_path):
    made = []

    def make(catalog: bool = False, **kw):
        """An EpisodeRecorder on a fake clock; catalog=True adds each bag to the catalog like the node."""
        clock = kw.pop('clock', None) or FakeClock()
        data = str(kw.pop('data_dir', tmp_path / 'data'))
        settings = RecorderSettings(data_dir=data, cell='cell0', roles=roles(), fsync=False, **kw)
        on_published = None
        if catalog:
            from chef_recorder.catalog import Catalog
            cat = Catalog(data)
            on_published = lambda meta, path: cat.add_bag(path)  # noqa: E731
        rec = EpisodeRecorder(settings, on_published=on_published, clock=clock, background=False)
        rec.fake_clock = clock
        made.append(rec)
        return rec

    yield make
    for r in made:
        if r._pool is not None:
            r._pool.shutdown(wait=True)
