"""Damaged bags give clear errors and the rest of the data set stays usable; the catalog is derived
data (rebuild == original); the rosbag2 talker bag written by real rosbag2 reads completely."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from chef_bringup.cli import main as chef
from chef_recorder.bagio import BagError, iter_messages, read_bag_metadata
from chef_recorder.catalog import Catalog
from chef_recorder.dataset import Dataset, TransitionSampler
from chef_recorder.decode import CorruptEpisodeError
from chef_recorder.integrity import verify_bag
from chef_recorder.layout import DataLayout, mcap_file
from conftest import Stream, feed

T0 = 4_000 * 10**9
TALKER = Path('/work/shared/data/rosbag2_talker')


@pytest.fixture
def four_episodes(make_recorder, tmp_path):
    rec = make_recorder(catalog=True)
    t = T0
    for e in range(4):
        s = Stream(image_px=32, tags={'stage': 'collect', 'iteration': e})
        t = s.episode(e, 40, t)                      # ~0.5 MB of images: a few MCAP chunks
        feed(rec, s.take())
    assert len(rec.published) == 4
    return tmp_path / 'data'


def test_truncated_and_corrupt_bags_fail_clearly_and_the_rest_stays_usable(four_episodes, capsys):
    data = four_episodes
    layout = DataLayout(data)
    truncated, flipped = layout.episode_dir('cell0', 'ep001'), layout.episode_dir('cell0', 'ep002')
    f = mcap_file(truncated)
    with open(f, 'r+b') as fh:
        fh.truncate(f.stat().st_size // 2)
    f = mcap_file(flipped)
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 3] ^= 0xFF                          # one flipped byte inside image data
    f.write_bytes(bytes(raw))

    assert verify_bag(layout.episode_dir('cell0', 'ep000')) == []
    problems = verify_bag(truncated)
    assert any('sha256 mismatch' in p for p in problems) and any('unreadable' in p for p in problems)
    assert any('sha256 mismatch' in p and 'ep002.mcap' in p for p in verify_bag(flipped))
    with pytest.raises(BagError, match='ep001.mcap: unreadable'):
        list(iter_messages(truncated))

    ds = Dataset(data)
    records = ds.query()
    assert len(records) == 4                             # the catalog still lists them
    with pytest.raises(CorruptEpisodeError, match='ep001.mcap: sha256 mismatch'):
        ds.load('ep001')
    with pytest.raises(CorruptEpisodeError, match='ep002.mcap: sha256 mismatch'):
        ds.load('ep002')
    sampler = TransitionSampler(ds, records, ['sawyer/joints/angle'], progress=False)
    assert sorted(sampler.skipped) == ['ep001', 'ep002'] and len(sampler) == 80
    assert sampler.sample(16, np.random.default_rng(0))['obs']['sawyer/joints/angle'].shape == (16, 3, 7)

    assert chef(['data', 'verify', '--data-dir', str(data)]) == 1
    out = capsys.readouterr().out
    assert 'FAIL episodes/cell0/ep001' in out and 'FAIL episodes/cell0/ep002' in out and '2 ok, 2 failed' in out

    # repair salvages the readable prefix of the truncated bag and every record of the flipped one
    assert chef(['data', 'repair', '--data-dir', str(data)]) == 0
    capsys.readouterr()
    assert chef(['data', 'verify', '--data-dir', str(data), '--deep']) == 0
    ds = Dataset(data)
    fixed = ds.get('ep001')
    assert fixed.metadata['status'] == 'recovered' and 'corrupt bag' in fixed.metadata['recovered_from']
    ep = ds.load(fixed)
    assert 0 < ep.steps < 40
    ok = np.asarray(ep.obs_ok)                          # the cut may leave the last tick partial
    assert ok[:-1].all()
    np.testing.assert_array_equal(ep.frames['sawyer/joints/angle'][:, 0][ok], np.arange(ep.steps + 1)[ok])
    assert ds.load('ep002').steps == 40
    assert len(list((layout.cell_dir('cell0') / '.quarantine').iterdir())) == 2


def test_catalog_rebuilt_from_the_bags_equals_the_original(four_episodes, capsys):
    data = four_episodes
    cat = Catalog(data)
    original = cat.dump()
    assert len(original) == 4 and all(json.loads(r['metadata'])['episode_id'] == r['id'] for r in original)
    cat.close()
    (data / 'catalog.sqlite').unlink()
    for suffix in ('-wal', '-shm'):
        Path(str(data / 'catalog.sqlite') + suffix).unlink(missing_ok=True)
    assert chef(['data', 'rebuild-catalog', '--data-dir', str(data)]) == 0
    assert Catalog(data).dump() == original
    assert chef(['data', 'rebuild-catalog', '--check', '--data-dir', str(data)]) == 0
    assert 'matches the bags (4 episodes)' in capsys.readouterr().out
    # a bag removed by hand, one copied in from elsewhere: the catalog follows the files
    shutil.rmtree(DataLayout(data).episode_dir('cell0', 'ep003'))
    assert chef(['data', 'rebuild-catalog', '--check', '--data-dir', str(data)]) == 1
    ds = Dataset(data)
    assert [r.id for r in ds.query()] == ['ep000', 'ep001', 'ep002']


def test_chef_data_ls_and_info(four_episodes, capsys):
    data = four_episodes
    assert chef(['data', 'ls', '--data-dir', str(data), '--where', 'iteration=2']) == 0
    out = capsys.readouterr().out
    assert 'ep002' in out and 'ep001' not in out and '1 episodes, 40 transitions' in out
    assert chef(['data', 'info', 'ep003', '--data-dir', str(data)]) == 0
    out = capsys.readouterr().out
    assert 'storage: mcap v9' in out and '"rgb_test_triplet1"' in out and '/cell0/joint_states' in out
    assert chef(['data', 'ls', '--data-dir', str(data), '--json']) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r['id'] for r in rows] == ['ep000', 'ep001', 'ep002', 'ep003']
    assert chef(['data', 'info', 'nope', '--data-dir', str(data)]) == 2     # clear error, no traceback
    assert "no episode 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(not TALKER.is_dir(), reason='shared talker bag not present')
def test_reader_reads_every_message_of_a_bag_written_by_rosbag2():
    info = read_bag_metadata(TALKER)
    expected = {t['topic_metadata']['name']: t['message_count'] for t in info['topics_with_message_count']}
    counts, texts = {}, []
    from chef_recorder.bagio import deserialize
    for m in iter_messages(TALKER):
        counts[m.topic] = counts.get(m.topic, 0) + 1
        msg = deserialize(m.raw, m.msgtype)
        if m.topic == '/topic':
            texts.append(msg.data)
    assert sum(counts.values()) == info['message_count'] == 20
    assert {k: v for k, v in expected.items() if v} == counts
    assert texts == [f'Hello, world! {i}' for i in range(10)]
    assert verify_bag(TALKER, deep=True) == []
