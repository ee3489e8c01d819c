"""Shipping an episode between stores (chef_recorder.shipping): a whole verified bag arrives under its
final name with its catalog row; a damaged, cut-short or foreign payload is refused and leaves
nothing in the store; an interrupted ingest leaves only a dot directory that the catalog ignores."""

import dataclasses
import os

import pytest

from chef_recorder.catalog import Catalog
from chef_recorder.dataset import Dataset
from chef_recorder.layout import CHECKSUMS, DataLayout, mcap_file
from chef_recorder.shipping import INCOMING, ShipmentError, clear_incoming, ingest_episode, pack_episode
from conftest import Stream, feed

T0 = 7_000 * 10**9


@pytest.fixture
def source(make_recorder, tmp_path):
    rec = make_recorder(catalog=True, data_dir=tmp_path / 'worker')
    t = T0
    for e in range(2):
        s = Stream(image_px=16, tags={'stage': 'execute', 'iteration': 0, 'candidate': 'p'})
        t = s.episode(e, 30, t)
        feed(rec, s.take())
    assert len(rec.published) == 2
    return DataLayout(tmp_path / 'worker')


def _store_is_empty(layout: DataLayout) -> bool:
    return list(layout.iter_bags()) == [] and len(Dataset(layout.root).training_records()) == 0


def test_shipped_episode_arrives_whole_with_its_catalog_row(source, tmp_path):
    head = DataLayout(tmp_path / 'head')
    cat = Catalog(head)
    for _, bag in source.iter_bags():
        ep = pack_episode(bag)
        out = ingest_episode(head, ep, cat)
        assert out == head.episode_dir('cell0', bag.name)
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in bag.iterdir())
        assert mcap_file(out).read_bytes() == mcap_file(bag).read_bytes()
        assert ingest_episode(head, ep, cat) is None            # the same episode again: a no-op
    rows = {r['id']: r for r in cat.rows()}
    src = {r['id']: r for r in Catalog(source).rows()}
    assert set(rows) == set(src) == {'ep000', 'ep001'}
    for k in rows:      # the head's row is derived from the shipped bag: same metadata and tags
        assert rows[k]['metadata'] == src[k]['metadata'] and rows[k]['stage'] == 'execute'
    assert not (head.cell_dir('cell0') / INCOMING).exists()


@pytest.mark.parametrize('damage', ['short', 'flipped', 'no_sums', 'bad_name', 'sums_mismatch'])
def test_damaged_shipment_is_refused_and_leaves_nothing(source, tmp_path, damage):
    head = DataLayout(tmp_path / 'head')
    cat = Catalog(head)
    bag = next(b for _, b in source.iter_bags())
    ep = pack_episode(bag)
    files = dict(ep.files)
    name = mcap_file(bag).name
    if damage == 'short':                 # cut short in transit: fewer bytes than were sent
        files[name] = files[name][:len(files[name]) // 2]
    elif damage == 'flipped':
        b = bytearray(files[name])
        b[len(b) // 2] ^= 0xFF
        files[name] = bytes(b)
    elif damage == 'no_sums':
        del files[CHECKSUMS]
        ep = dataclasses.replace(ep, sha256={k: v for k, v in ep.sha256.items() if k != CHECKSUMS})
    elif damage == 'bad_name':
        ep = dataclasses.replace(ep, episode_id='../../evil')
    if damage == 'sums_mismatch':         # hashes consistent in transit, but not the bag's own sums:
        from chef_recorder.shipping import sha256_bytes       # a bag truncated before it was packed
        files[name] = files[name][:len(files[name]) // 2]
        ep = dataclasses.replace(ep, sha256={k: sha256_bytes(v) for k, v in files.items()})
    ep = dataclasses.replace(ep, files=files)
    with pytest.raises(ShipmentError) as err:
        ingest_episode(head, ep, cat)
    assert '\n' not in str(err.value)
    assert _store_is_empty(head)
    inc = head.cell_dir('cell0') / INCOMING
    assert not inc.exists() or not any(inc.iterdir())


def test_interrupted_ingest_is_invisible_and_cleared(source, tmp_path):
    """A receiver killed mid-write leaves files only under .incoming: no episode, no catalog row."""
    head = DataLayout(tmp_path / 'head')
    bag = next(b for _, b in source.iter_bags())
    half = head.cell_dir('cell0') / INCOMING / 'dead' / bag.name
    half.mkdir(parents=True)
    data = mcap_file(bag).read_bytes()
    (half / mcap_file(bag).name).write_bytes(data[:len(data) // 3])
    assert _store_is_empty(head)
    assert clear_incoming(head) == 1 and not (head.cell_dir('cell0') / INCOMING).exists()
    assert ingest_episode(head, pack_episode(bag), Catalog(head)) is not None
    assert [b.name for _, b in head.iter_bags()] == [bag.name]
    assert os.listdir(head.cell_dir('cell0')) == [bag.name]
