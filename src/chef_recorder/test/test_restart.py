"""A recorder that dies mid-episode and one that takes over (recorder core, in-process, real MCAP).

A kill -9 is reproduced exactly: the dead recorder's partial bag is what its file held at the
moment of the kill (complete MCAP chunks; the chunk still in memory is lost) and its lock is free.
The restarted recorder receives the episode's start again (events are transient local) and must
publish the episode once, with the dead one's readable ticks merged in; `chef data repair` must
merge too when the rest was published without them; `chef data ls` must show every missing tick."""

import shutil

import numpy as np
import pytest

from chef_bringup.cli import main as chef
from chef_contract import topics as T
from chef_recorder.dataset import Dataset
from chef_recorder.integrity import partial_state, salvage, verify_bag
from chef_recorder.layout import DataLayout, mcap_file
from chef_recorder.synthetic import PERIOD_NS
from conftest import Stream, bag_meta, feed, ticks_in_bag

T0 = 9_000 * 10**9
STEPS = 50
KILL_AT = 30           # ticks 0..29 published to the first recorder
RESUME_AT = 36         # ticks 30..35 published while no recorder ran


def ticks(s, e, ks, steps=STEPS):
    for k in ks:
        st = T0 + k * PERIOD_NS
        s.cell.observation(e, k, st)
        if k < steps:
            s.cell.command(e, k, st)


def kill_9(rec, layout, episode_id):
    """The state a kill -9 leaves: the partial's bytes as on disk now, no lock, no close."""
    partial = layout.partial_dir('cell0', episode_id)
    snapshot = partial.with_name('snapshot')
    shutil.copytree(partial, snapshot)
    for ep in rec._open:
        ep.writer._release_lock()
    rec._open.clear()
    shutil.rmtree(partial)
    snapshot.rename(partial)
    assert partial_state(partial) == 'crashed'
    return partial


def first_life(make_recorder, tmp_path):
    """ep000 recorded whole, ep001 up to tick KILL_AT - 1, then the recorder is killed."""
    layout = DataLayout(tmp_path / 'data')
    s = Stream(image_px=128)                           # ~100 kB a tick: an MCAP chunk every ~10 ticks
    s.cell.policy_info('pol-r', 'cd' * 32)
    rec = make_recorder(catalog=True)
    s.episode(0, 10, T0 - 20 * PERIOD_NS)
    s.cell.event('start', 'ep001', 1, T0)
    ticks(s, 1, range(KILL_AT))
    items = s.take()
    feed(rec, items)
    rec.fake_clock.t += 1.0
    rec.poll()                                         # everything held is written
    assert [p.name for p in rec.published] == ['ep000'] and rec.open_episodes == ['ep001']
    partial = kill_9(rec, layout, 'ep001')
    salvaged = {m[0] for m in salvage(mcap_file(partial)).messages}
    assert f'/cell0/{T.JOINT_STATES}' in salvaged   # some whole chunks reached the disk
    history = [it for it in items if it[0] == T.EPISODE_EVENTS]
    return layout, s, history


def second_life(rec, s, history):
    """The restarted recorder: event history (transient local), then ticks RESUME_AT.. and the end."""
    ticks(s, 1, range(RESUME_AT, STEPS + 1))
    s.cell.event('end', 'ep001', 1, T0 + STEPS * PERIOD_NS, steps=STEPS, success=True)
    feed(rec, history + s.take())
    rec.fake_clock.t += 5.0
    rec.poll()


def recorded_ticks(path):
    ks = [k for e, k in ticks_in_bag(path) if e == 1]
    assert ks == sorted(set(ks))
    return ks


def test_restarted_recorder_merges_the_dead_ones_partial_bag(make_recorder, tmp_path, capsys):
    layout, s, history = first_life(make_recorder, tmp_path)
    rec = make_recorder(catalog=True)
    second_life(rec, s, history)

    assert [p.name for p in rec.published] == ['ep001'] and rec.counters['already_recorded'] == 1
    assert not list(layout.iter_partials())            # nothing left for `chef data repair`
    kept = list((layout.cell_dir('cell0') / '.quarantine').iterdir())
    assert len(kept) == 1 and '.merged-' in kept[0].name          # the original is kept
    path = rec.published[0]
    assert verify_bag(path, deep=True) == []
    ks = recorded_ticks(path)
    head = [k for k in ks if k < KILL_AT]
    assert head == list(range(len(head))) and len(head) >= 10     # the dead recorder's whole chunks
    assert [k for k in ks if k >= KILL_AT] == list(range(RESUME_AT, STEPS + 1))
    m = bag_meta(path)
    assert m['status'] == 'end' and m['success'] and not m['complete']
    assert m['missing_ticks'] == STEPS - m['steps_recorded'] >= RESUME_AT - KILL_AT
    assert m['missing_ticks'] - (STEPS + 1 - len(ks)) in (0, 1)   # the kill may split the last tick
    assert m['merged_from'].startswith('episodes/cell0/.quarantine/ep001.merged-')
    assert m['policy_id'] == 'pol-r' and m['intention_schedule'][0] == [0, 'reach_grasp']
    assert m['topics'][f'/cell0/{T.EPISODE_EVENTS}'] == 2                     # one start, one end
    assert m['topics'][f'/cell0/{T.TF_STATIC}'] == 1                          # the salvaged one dropped

    ep = Dataset(layout.root).load('ep001')
    frames = ep.frames['sawyer/joints/angle'][:, 0].astype(int).tolist()
    assert frames in (ks, ks[:len(head) - 1] + ks[len(head):])   # a tick without its command is none
    n_head = sum(1 for k in frames if k < KILL_AT)
    assert not np.asarray(ep.valid)[n_head - 1]        # the transition across the gap is not used
    assert np.asarray(ep.valid)[n_head:].all()

    # chef data ls: the partial episode is not hidden silently, and --all shows its missing ticks
    assert chef(['data', '--data-dir', str(layout.root), 'ls']) == 0
    out = capsys.readouterr().out
    assert '1 episodes' in out and f'1 PARTIAL episodes not shown ({m["missing_ticks"]} ticks missing: ep001)' in out
    assert chef(['data', '--data-dir', str(layout.root), 'ls', '--all']) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith('ep001'))
    assert 'end PARTIAL' in row and f'  {m["missing_ticks"]}  ' in row


def test_repair_merges_a_dead_partial_into_the_rest_published_without_it(make_recorder, tmp_path, capsys):
    """A restart that could not take the partial over (it was set aside) publishes the rest alone;
    `chef data repair` then merges the dead recorder's ticks in instead of finding 'nothing'."""
    layout, s, history = first_life(make_recorder, tmp_path)
    partial = layout.partial_dir('cell0', 'ep001')
    aside = partial.with_name('ep001.stale-1')
    partial.rename(aside)
    rec = make_recorder(catalog=True)
    second_life(rec, s, history)
    rest = recorded_ticks(rec.published[0])
    assert rest == list(range(RESUME_AT, STEPS + 1))

    assert chef(['data', '--data-dir', str(layout.root), 'repair']) == 0
    out = capsys.readouterr().out
    assert 'nothing recoverable' not in out and 'repaired 1 of 1' in out
    ds = Dataset(layout.root)
    rec_ = ds.get('ep001')
    ks = recorded_ticks(rec_.path)
    head = [k for k in ks if k < KILL_AT]
    assert len(head) >= 10 and head == list(range(len(head))) and ks[len(head):] == rest
    m = rec_.metadata
    assert m['status'] == 'recovered' and not m['complete'] and m['success']
    assert m['missing_ticks'] == STEPS - m['steps_recorded'] and m['missing_ticks'] - (STEPS + 1 - len(ks)) in (0, 1)
    assert 'merged with episodes/cell0/.quarantine/ep001.superseded-' in m['recovered_from']
    assert m['topics'][f'/cell0/{T.TF_STATIC}'] == 1                          # not one per merged part
    assert verify_bag(rec_.path, deep=True) == [] and not list(layout.iter_partials())
    assert chef(['data', '--data-dir', str(layout.root), 'ls', '--all']) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith('ep001'))
    assert 'recovered PARTIAL' in row


def test_a_repair_killed_before_it_published_is_finished_by_the_next(make_recorder, tmp_path, monkeypatch,
                                                                     capsys):
    """`chef loop` repairs a dead recorder's partials when its cell session ends, so a kill of the
    loop can stop a repair midway: the original must still be where the next repair looks (not only
    in .quarantine), and that repair publishes the episode once, with every readable tick."""
    from chef_recorder import integrity
    layout, s, history = first_life(make_recorder, tmp_path)
    partial = layout.partial_dir('cell0', 'ep001')

    def killed(*args, **kwargs):
        raise KeyboardInterrupt('the repairing process dies while it replays the salvage')
    monkeypatch.setattr(integrity, '_replay', killed)
    with pytest.raises(KeyboardInterrupt):
        integrity.repair_partial(layout, 'cell0', partial)
    monkeypatch.undo()
    left = [d.name for _, d in layout.iter_partials()]
    assert len(left) == 1 and left[0].startswith('ep001.stale-') and partial_state(layout.partial_dir(
        'cell0', left[0])) == 'crashed'

    assert chef(['data', '--data-dir', str(layout.root), 'repair']) == 0
    assert 'repaired 1 of 1' in capsys.readouterr().out
    rec = Dataset(layout.root).get('ep001')
    assert rec.metadata['status'] == 'recovered' and not rec.metadata['complete']
    ks = recorded_ticks(rec.path)
    assert len(ks) >= 10 and ks == list(range(len(ks)))
    assert not list(layout.iter_partials())
    kept = [p.name for p in layout.quarantine_dir('cell0').iterdir()]
    assert len(kept) == 1 and kept[0].startswith('ep001.stale-') and '.partial-' in kept[0]


def test_repair_skips_a_corrupt_chunk_and_never_counts_nothing_as_repaired(make_recorder, tmp_path, capsys):
    layout, s, history = first_life(make_recorder, tmp_path)
    partial = layout.partial_dir('cell0', 'ep001')
    whole = salvage(mcap_file(partial))
    # break a message record in the middle of the first chunk: the rest of that chunk is lost, the
    # chunk after it is not
    data = bytearray(mcap_file(partial).read_bytes())
    chunk = 8 + 9 + int.from_bytes(data[9:17], 'little')          # after the header record
    assert data[chunk] == 0x06
    body = chunk + 9
    comp = int.from_bytes(data[body + 28:body + 32], 'little')
    pos, seen = body + 40 + comp, 0
    while seen < 100:                                   # the 100th message record
        seen += data[pos] == 0x05
        if seen < 100:
            pos += 9 + int.from_bytes(data[pos + 1:pos + 9], 'little')
    data[pos + 1:pos + 9] = (1 << 40).to_bytes(8, 'little')
    mcap_file(partial).write_bytes(bytes(data))
    found = salvage(mcap_file(partial))
    assert len(found.skipped) == 1 and 'corrupt chunk at byte' in found.skipped[0] and not found.stopped_at
    assert found.messages[:99] == whole.messages[:99] and whole.messages[99] not in found.messages
    assert whole.messages[-1] == found.messages[-1]    # the next chunk was read
    # an empty partial next to it: nothing to recover, and repair says so (exit 1)
    empty = layout.partial_dir('cell0', 'ep009')
    empty.mkdir()
    mcap_file(empty).write_bytes(b'\x89MCAP0\r\n')
    assert chef(['data', '--data-dir', str(layout.root), 'repair']) == 1
    out = capsys.readouterr().out
    assert 'ep009' in out and 'nothing recoverable' in out
    assert 'repaired 1 of 2, 1 with nothing recoverable' in out
    m = Dataset(layout.root).get('ep001').metadata
    assert 'corrupt chunk at byte' in m['recovered_from'] and 'died before the episode ended' in m['abort_reason']


def test_a_bag_closed_but_not_renamed_by_the_dead_recorder_is_published_by_the_next(make_recorder, tmp_path):
    layout = DataLayout(tmp_path / 'data')
    s = Stream()
    s.episode(1, 5, T0)
    items = s.take()
    feed(make_recorder(), items)
    final = layout.episode_dir('cell0', 'ep001')
    partial = layout.partial_dir('cell0', 'ep001')
    final.rename(partial)                              # killed between checksum and rename
    assert partial_state(partial) == 'closed'
    rec = make_recorder(catalog=True)
    feed(rec, [it for it in items if it[0] == T.EPISODE_EVENTS])
    assert final.is_dir() and not partial.exists() and rec.counters['already_recorded'] == 1
    assert rec.published == [] and [r.id for r in Dataset(layout.root).query()] == ['ep001']
