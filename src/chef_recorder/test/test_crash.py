"""kill -9 of the recorder process mid-episode: earlier episodes intact, the partial one detected and
recovered by `chef data repair`, or taken over by a restarted recorder (real recorder processes,
real DDS, real MCAP)."""

import os
import signal
import subprocess
import time

import numpy as np
import rclpy

from chef_bringup.cli import main as chef
from chef_contract.testing import executable, ros_env, unique_domain_id
from chef_recorder.catalog import Catalog
from chef_recorder.dataset import Dataset
from chef_recorder.integrity import partial_state, verify_bag
from chef_recorder.layout import DataLayout, mcap_file
from chef_recorder.synthetic import PERIOD_NS, CellPublisher

CAMS = ('basket_front_left', 'basket_front_right')


def wait_for(cond, timeout, what):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.05)


def publish_episode(cell, e, steps, t0, end=True, ticks=None, start=True):
    eid = f'crash{e}'
    if start:
        cell.event('start', eid, e, t0)
    for k in (range(steps + 1) if ticks is None else ticks):
        st = t0 + k * PERIOD_NS
        cell.observation(e, k, st)
        if k < steps:
            cell.command(e, k, st)
        time.sleep(0.01)
    if end:
        cell.event('end', eid, e, t0 + steps * PERIOD_NS, steps=steps, success=True)
    return t0 + (steps + 2) * PERIOD_NS


def start_recorder(data, domain):
    return subprocess.Popen(
        [executable('chef_recorder', 'recorder'), '--ros-args', '-r', '__ns:=/cell0',
         '-p', f'data_dir:={data}', '-p', f'cameras:=[{",".join(CAMS)}]', '-p', 'close_timeout_s:=1.0'],
        env=ros_env(domain), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def test_kill_9_mid_episode_loses_no_completed_episode(tmp_path, capsys):
    # ~10 s: a recorder process starts, three episodes of 128x128 images are published over DDS
    data = tmp_path / 'data'
    domain = unique_domain_id()
    proc = start_recorder(data, domain)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('cell', namespace='cell0', context=ctx)
    try:
        cell = CellPublisher(node, CAMS, image_px=128)
        wait_for(lambda: all(p.get_subscription_count() > 0 for p in cell.pubs.values()), 30, 'recorder')
        time.sleep(1.0)
        layout = DataLayout(data)
        t = 7_000 * 10**9
        t = publish_episode(cell, 0, 10, t)
        t = publish_episode(cell, 1, 10, t)
        wait_for(lambda: (layout.episode_dir('cell0', 'crash1') / 'SHA256SUMS').exists(), 20, 'two episodes')
        publish_episode(cell, 2, 30, t, end=False)                    # ~6 MB: several MCAP chunks
        partial = layout.partial_dir('cell0', 'crash2')
        wait_for(lambda: mcap_file(partial).exists() and mcap_file(partial).stat().st_size > 3 << 19,
                 20, 'chunks of the third episode on disk')
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        rclpy.shutdown(context=ctx)

    # completed episodes: intact, checksummed, catalogued
    for e in (0, 1):
        assert verify_bag(layout.episode_dir('cell0', f'crash{e}'), deep=True) == []
    cat = Catalog(layout)
    cat.sync()                  # the kill may fall between a bag's rename and its catalog row
    assert sorted(r['id'] for r in cat.rows()) == ['crash0', 'crash1']
    # the partial one is detected
    assert partial.is_dir() and partial_state(partial) == 'crashed'
    assert chef(['data', '--data-dir', str(data), 'ls']) == 0
    out = capsys.readouterr().out
    assert '2 episodes' in out and 'crash2' in out and '[crashed]' in out
    assert chef(['data', '--data-dir', str(data), 'verify']) == 1
    assert 'partial episode [crashed]' in capsys.readouterr().out

    # repair recovers what MCAP allows and keeps the original
    assert chef(['data', '--data-dir', str(data), 'repair']) == 0
    capsys.readouterr()
    assert not partial.exists()
    assert list((layout.cell_dir('cell0') / '.quarantine').iterdir())
    ds = Dataset(data)
    assert [r.id for r in ds.query()] == ['crash0', 'crash1']                  # complete only
    rec = ds.get('crash2')
    assert rec.metadata['status'] == 'recovered' and not rec.metadata['complete']
    assert 'crashed partial' in rec.metadata['recovered_from']
    ep = ds.load(rec)
    assert ep.steps >= 10                                  # whole MCAP chunks survive (~10 ticks each)
    ok = np.asarray(ep.obs_ok)                             # a chunk boundary may split the last tick
    assert ok[:-1].all() and np.asarray(ep.valid)[:-1].all()
    np.testing.assert_array_equal(ep.frames['sawyer/joints/angle'][:, 0][ok], np.arange(ep.steps + 1)[ok])
    assert verify_bag(rec.path, deep=True) == []
    assert chef(['data', '--data-dir', str(data), 'verify']) == 0


def test_kill_9_and_restart_mid_episode_publishes_one_merged_episode(tmp_path, capsys):
    """The restarted recorder gets the episode's start again (transient-local events), takes the dead
    one's partial bag over and publishes the episode once: what the dead recorder had written, then
    every tick after the restart; the ticks published while no recorder ran are missing, and
    `chef data ls` says so."""
    import json

    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    from chef_contract import topics as T
    from chef_contract.ros import qos
    data = tmp_path / 'data'
    layout = DataLayout(data)
    domain = unique_domain_id()
    proc = start_recorder(data, domain)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('cell', namespace='cell0', context=ctx)
    status = []
    node.create_subscription(String, T.RECORDER_STATUS, lambda m: status.append(json.loads(m.data)),
                             qos('latched', 'sub'))
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)

    def ready(pid):
        ex.spin_once(timeout_sec=0.05)
        return any(st['pid'] == pid and st['ready'] for st in status)
    steps, killed_at, restarted_at = 40, 25, 30
    try:
        cell = CellPublisher(node, CAMS, image_px=128)
        wait_for(lambda: ready(proc.pid), 30, 'recorder ready')
        t0 = 7_000 * 10**9
        t1 = publish_episode(cell, 0, 10, t0)
        wait_for(lambda: (layout.episode_dir('cell0', 'crash0') / 'SHA256SUMS').exists(), 20, 'episode 0')
        publish_episode(cell, 1, steps, t1, end=False, ticks=range(killed_at))
        partial = layout.partial_dir('cell0', 'crash1')
        wait_for(lambda: mcap_file(partial).exists() and mcap_file(partial).stat().st_size > 1 << 20,
                 20, 'chunks of episode 1 on disk')
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        publish_episode(cell, 1, steps, t1, end=False, start=False, ticks=range(killed_at, restarted_at))
        proc = start_recorder(data, domain)
        wait_for(lambda: ready(proc.pid), 30, 'restarted recorder ready')
        quarantine = layout.cell_dir('cell0') / '.quarantine'
        wait_for(lambda: quarantine.is_dir() and any(quarantine.iterdir()), 20, 'the partial bag taken over')
        publish_episode(cell, 1, steps, t1, start=False, ticks=range(restarted_at, steps + 1))
        wait_for(lambda: (layout.episode_dir('cell0', 'crash1') / 'SHA256SUMS').exists(), 20, 'episode 1')
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)

    assert not list(layout.iter_partials())
    assert [p.name.split('.')[1].split('-')[0] for p in quarantine.iterdir()] == ['merged']  # the original
    ds = Dataset(data)
    assert [r.id for r in ds.query()] == ['crash0']
    rec = ds.get('crash1')
    m = rec.metadata
    assert m['status'] == 'end' and m['merged_from'] and not m['complete']
    ep = ds.load(rec)
    ks = ep.frames['sawyer/joints/angle'][:, 0].astype(int).tolist()
    head = [k for k in ks if k < killed_at]
    assert len(head) >= 5 and head == list(range(len(head)))           # what the dead one wrote
    assert ks[len(head):] == list(range(restarted_at, steps + 1))      # everything after the restart
    assert m['missing_ticks'] == steps + 1 - len(ks) >= restarted_at - killed_at
    assert verify_bag(rec.path, deep=True) == []
    assert chef(['data', '--data-dir', str(data), 'ls']) == 0
    out = capsys.readouterr().out
    assert f'1 PARTIAL episodes not shown ({m["missing_ticks"]} ticks missing: crash1)' in out
    assert 'partial:' not in out
