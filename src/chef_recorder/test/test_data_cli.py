"""`chef data` cannot mislead (issue 14.3): every bad input - truncated, garbage-appended, random bytes,
lying counts, empty directory, a file, a bag given as data directory, a foreign bag in the store - ends
in one line and a non-zero exit, never a traceback; bulk commands end with their summary; `repair`
touches only what it recognises and counts only trainable results; every good episode stays
byte-identical and trainable."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from chef_bringup.cli import main as chef
from chef_recorder.dataset import Dataset, TransitionSampler
from chef_recorder.layout import DataLayout, mcap_file
from conftest import Stream, feed

T0 = 5_000 * 10**9
GOOD = ('ep000', 'ep001', 'ep002')
DAMAGE = ('truncated', 'garbage', 'random', 'lying')


def _digest(root: Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def _foreign_bag(path: Path) -> Path:
    """A plain rosbag2 bag (as `ros2 bag record` writes one): no chef.* metadata, no SHA256SUMS."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from chef_recorder.bagio import typestore
    ts = typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection('/chatter', 'std_msgs/msg/String', typestore=ts)
        for i in range(3):
            w.write(c, i, bytes(ts.serialize_cdr(ts.types['std_msgs/msg/String'](data=str(i)),
                                                 'std_msgs/msg/String')))
    return path


@pytest.fixture
def store(make_recorder, tmp_path):
    rec = make_recorder(catalog=True)
    t = T0
    for e, eid in enumerate(GOOD + DAMAGE):           # episodes named after what will happen to them
        s = Stream(image_px=16)
        t = s.episode(e, 30, t, episode_id=eid if eid in DAMAGE else None)
        feed(rec, s.take())
    assert len(rec.published) == len(GOOD + DAMAGE)
    return tmp_path / 'data'


def _run(capsys, *argv):
    rc = chef(['data', *map(str, argv)])
    out, err = capsys.readouterr()
    assert 'Traceback' not in out + err
    return rc, out, err


def _error_line(capsys, *argv):
    """A refused input: exit 2 and exactly one line, on stderr."""
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and out == '' and len(err.strip().splitlines()) == 1, (argv, rc, out, err)
    return err.strip()


def _damage(bags):
    """Damage each bag in the way its name says."""
    for kind, b in bags.items():
        f = mcap_file(b)
        if kind == 'truncated':
            with open(f, 'r+b') as fh:
                fh.truncate(f.stat().st_size // 2)
        elif kind == 'garbage':
            with open(f, 'ab') as fh:
                fh.write(b'\x00garbage' * 100)
        elif kind == 'random':
            f.write_bytes(np.random.default_rng(0).integers(0, 256, f.stat().st_size, dtype=np.uint8).tobytes())
        else:
            meta = yaml.safe_load((b / 'metadata.yaml').read_text())
            for t in meta['rosbag2_bagfile_information']['topics_with_message_count']:
                t['message_count'] += 3
            (b / 'metadata.yaml').write_text(yaml.safe_dump(meta))
    return bags


def test_every_bad_input_is_one_line_and_non_zero(store, tmp_path, capsys):
    data = store
    before = _digest(data / 'episodes')
    layout = DataLayout(data)
    outside = tmp_path / 'outside'
    outside.mkdir()
    bad = {k: Path(shutil.copytree(layout.episode_dir('cell0', k), outside / k)) for k in DAMAGE}
    _damage(bad)
    empty = outside / 'empty'
    empty.mkdir()
    afile = outside / 'notes.txt'
    afile.write_text('not a bag\n')
    foreign = _foreign_bag(outside / 'foreign')

    for kind, bag in bad.items():
        rc, out, _ = _run(capsys, 'verify', bag)
        fails = [ln for ln in out.splitlines() if ln.startswith('FAIL')]
        assert rc == 1 and len(fails) == 1 and '1 bags checked: 0 ok, 1 failed' in out, (kind, out)
        rc, out, err = _run(capsys, 'info', bag)
        assert rc != 0, kind
        assert kind == 'lying' and 'MISMATCH' in out or len(err.strip().splitlines()) == 1, (kind, out, err)
    assert 'no such file' in _error_line(capsys, 'info', outside / 'nope')
    for path in (empty, afile):
        for action in ('info', 'verify'):
            _error_line(capsys, action, path)
        for action in ('ls', 'verify', 'repair', 'rebuild-catalog'):
            _error_line(capsys, action, '--data-dir', path)
    for action in ('ls', 'verify', 'repair', 'rebuild-catalog'):        # a bag is not a data directory
        assert 'is a rosbag2 bag, not a data directory' in _error_line(capsys, action, '--data-dir', foreign)
    assert not (foreign / 'catalog.sqlite').exists() and not (foreign / 'episodes').exists()
    # any rosbag2 bag on its own: fine
    assert _run(capsys, 'verify', '--deep', foreign)[0] == 0
    rc, out, _ = _run(capsys, 'info', foreign)
    assert rc == 0 and '/chatter' in out and 'std_msgs/msg/String' in out
    assert _digest(data / 'episodes') == before


def test_a_store_with_bad_bags_keeps_every_good_episode_intact_and_trainable(store, capsys):
    data = store
    layout = DataLayout(data)
    cell = layout.cell_dir('cell0')
    good_before = {e: _digest(layout.episode_dir('cell0', e)) for e in GOOD}
    foreign = _foreign_bag(cell / 'foreign')
    foreign_before = _digest(foreign)
    (cell / 'empty').mkdir()
    (cell / 'stray').mkdir()
    (cell / 'stray' / 'notes.txt').write_text('x')
    (cell / '.partial' / 'junk').mkdir(parents=True)                  # not a recorder's partial
    bad = _damage({k: layout.episode_dir('cell0', k) for k in DAMAGE})     # CHEF episodes, damaged

    rc, out, _ = _run(capsys, 'ls', '--data-dir', data)
    assert rc == 0 and '3 bags not listed (unreadable or not CHEF episodes' in out
    assert "junk  [not a recorder's partial" in out
    rc, out, _ = _run(capsys, 'verify', '--deep', '--data-dir', data)
    fails = [ln for ln in out.splitlines() if ln.startswith('FAIL')]
    assert rc == 1 and out.rstrip().splitlines()[-1].startswith('10 bags checked (deep): 3 ok, 7 failed')
    assert len(fails) == 8                                  # 7 bags + the junk partial, one line each
    assert any('foreign: not a CHEF episode' in ln for ln in fails)
    rc, out, _ = _run(capsys, 'info', 'ep000', '--data-dir', data)
    assert rc == 0 and 'storage: mcap v9' in out and 'deadline 0.1 s' in out

    # the training sampler skips what does not decode; the good episodes all train
    ds = Dataset(data)
    records = ds.training_records()
    assert 'foreign' not in {r.id for r in records}
    sampler = TransitionSampler(ds, records, ['sawyer/joints/angle'], progress=False)
    assert set(GOOD) <= {r.id for r in records} and not set(GOOD) & set(sampler.skipped)
    assert len(sampler) >= 90

    rc, out, _ = _run(capsys, 'repair', '--data-dir', data)
    lines = out.rstrip().splitlines()
    assert rc == 1 and lines[-1].startswith('repaired ')
    assert '4 not CHEF episodes left untouched' in lines[-1] and '1 with nothing recoverable' in lines[-1]
    assert lines[-1].startswith('repaired 3 of 4')
    for name in ('foreign', 'empty', 'stray'):
        assert f'SKIP episodes/cell0/{name}: not a CHEF episode' in out
    assert _digest(foreign) == foreign_before and (cell / 'empty').is_dir() and (cell / 'stray').is_dir()
    assert (cell / '.partial' / 'junk').is_dir()
    assert not any('FAIL' in ln and 'quarantine' in ln for ln in lines)
    for e in GOOD:
        assert _digest(layout.episode_dir('cell0', e)) == good_before[e]
    ds = Dataset(data)
    sampler = TransitionSampler(ds, ds.training_records(), ['sawyer/joints/angle'], progress=False)
    assert not set(GOOD) & set(sampler.skipped) and len(sampler) >= 90
    assert sampler.sample(8, np.random.default_rng(0))['obs']['sawyer/joints/angle'].shape == (8, 3, 7)
    assert len(list((cell / '.quarantine').iterdir())) == 4             # every original kept
    assert not bad['random'].exists()                                   # nothing readable: not published
    for kind in ('truncated', 'garbage', 'lying'):                      # the salvaged ones verify and train
        assert ds.get(kind).metadata['status'] == 'recovered' and kind not in sampler.skipped
    assert _run(capsys, 'verify', '--deep', '--data-dir', data)[0] == 1    # the foreign bag is still there
