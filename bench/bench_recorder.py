"""Recorder + reader: 4 cells (12 cameras 128x128 @ 20 Hz + proprio/wrench) recorded over DDS - drops, MB/s, CPU - and reader transitions/s against a CPU learner's consumption.

Recording: 4 `synthetic_cell` processes (real messages, wall-clock stamps, 20 Hz) and 4 `recorder`
processes (one per cell namespace, fsync on) run concurrently; figures come from the recorded bags'
metadata and the recorders' CPU time. Baselines measured in the same run: the data rate the cells
offer (recorded / offered must be 1.0 with 0 drops) and the raw rosbags MCAP write speed of this disk
(headroom). Reader: TransitionSampler over the recorded episodes (offline_policy_improvement keys,
images resized to 64x64, n-step 3, batch 256) against the transitions/s a minimal CPU learner update
consumes (Nature-CNN on 2 cameras + MLP critic, torch, batch 256).

    python bench/bench_recorder.py [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CELLS = 4
CAMERAS = ('basket_front_left', 'basket_front_right', 'basket_back_left')
PX = 128


def _procs_cpu(pids):
    import psutil
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def record(data: Path, episodes: int, steps: int) -> dict:
    from chef_contract.testing import executable, ros_env, unique_domain_id
    domain = unique_domain_id()
    env = ros_env(domain)
    rec_exe = executable('chef_recorder', 'recorder')
    cell_exe = executable('chef_recorder', 'synthetic_cell')
    cams = f'[{",".join(CAMERAS)}]'
    recorders = [subprocess.Popen(
        [rec_exe, '--ros-args', '-r', f'__ns:=/cell{i}', '-p', f'data_dir:={data}', '-p', f'cameras:={cams}'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT) for i in range(CELLS)]
    time.sleep(3.0)                                   # recorders up and subscribed before the cells talk
    reports = [data.parent / f'cell{i}.json' for i in range(CELLS)]
    t0 = time.monotonic()
    cells = [subprocess.Popen(
        [cell_exe, '--ros-args', '-r', f'__ns:=/cell{i}', '-p', f'episodes:={episodes}', '-p', f'steps:={steps}',
         '-p', 'rate_hz:=20.0', '-p', 'clock:=wall', '-p', f'image_px:={PX}', '-p', f'cameras:={cams}',
         '-p', 'start_delay_s:=2.0', '-p', 'id_prefix:=bench', '-p', f'report_file:={reports[i]}'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT) for i in range(CELLS)]
    cpu0 = _procs_cpu([p.pid for p in recorders])
    for p in cells:
        p.wait(timeout=episodes * (steps + 1) * 0.05 * 3 + 60)
    wall = time.monotonic() - t0 - 2.0
    from chef_recorder.catalog import Catalog
    want = CELLS * episodes
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Catalog(data) as cat:
            if len(cat) >= want:
                break
        time.sleep(0.5)
    cpu = _procs_cpu([p.pid for p in recorders]) - cpu0
    for p in recorders:
        p.send_signal(signal.SIGINT)
    for p in recorders:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    with Catalog(data) as cat:
        rows = cat.rows()
    metas = [json.loads(r['metadata']) for r in rows]
    offered = [json.loads(r.read_text()) for r in reports if r.exists()]
    payload = sum(m['bytes'] for m in metas)
    ticks = sum(m['steps_recorded'] + 1 for m in metas)
    image_bytes = CELLS * episodes * (steps + 1) * len(CAMERAS) * PX * PX * 3
    rec_wall = sum(m['steps_recorded'] for m in metas) / CELLS * 0.05    # episode time per cell
    return {
        'episodes': len(rows), 'episodes_expected': want, 'ticks': ticks,
        'dropped_messages': int(sum(m['dropped_messages'] for m in metas)),
        'incomplete_ticks': int(sum(m['incomplete_ticks'] for m in metas)),
        'missing_ticks': int(sum(m['missing_ticks'] for m in metas)),
        'missed_period_ticks': int(sum(m['missed_period_ticks'] for m in metas)),
        'rate_ok_episodes': int(sum(bool(m['rate_ok']) for m in metas)),
        # policy/info is latched: published once per cell, repeated at the head of every bag
        'messages_published': int(sum(o['published'] - o.get('policy_info', 0) for o in offered)),
        'messages_recorded': int(sum(m['message_count'] - sum(n for t, n in m['topics'].items()
                                                              if t.endswith('/policy/info')) for m in metas)),
        'cell_missed_periods': int(sum(o.get('missed_periods', 0) for o in offered)),
        'payload_mb': payload / 1e6, 'files_mb': sum(r['file_bytes'] for r in rows) / 1e6,
        'image_mb_offered': image_bytes / 1e6,
        'written_mb_s': sum(r['file_bytes'] for r in rows) / 1e6 / max(rec_wall, 1e-9),
        'recorder_cpu_pct_per_cell': 100.0 * cpu / max(wall, 1e-9) / CELLS, 'wall_s': wall,
    }


def raw_write_mb_s(tmp: Path, seconds: float) -> float:
    """Baseline: rosbags MCAP write speed of this disk for 128x128 images (no ROS, no fsync)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from chef_recorder.bagio import typestore
    ts = typestore()
    Image = ts.types['sensor_msgs/msg/Image']
    Header = ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    img = Image(header=Header(stamp=Time(sec=0, nanosec=0), frame_id='cam'), height=PX, width=PX,
                encoding='rgb8', is_bigendian=0, step=PX * 3,
                data=np.random.default_rng(0).integers(0, 255, PX * PX * 3, dtype=np.uint8))
    raw = bytes(ts.serialize_cdr(img, 'sensor_msgs/msg/Image'))
    path = tmp / 'raw_bag'
    n = 0
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection('/cam', 'sensor_msgs/msg/Image', typestore=ts)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(100):
                w.write(c, n, raw)
                n += 1
        dt = time.perf_counter() - t0
    shutil.rmtree(path)
    return n * len(raw) / 1e6 / dt


def reader(data: Path, batches: int) -> dict:
    from chef_contract.spec import OBSERVATION_SETS
    from chef_recorder.dataset import Dataset, TransitionSampler
    ds = Dataset(data)
    records = ds.query(complete=None)
    keys = OBSERVATION_SETS['offline_policy_improvement']
    t0 = time.perf_counter()
    sampler = TransitionSampler(ds, records, keys, n_step=3, discount=0.99, image_size=64, progress=False)
    decode_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    sampler.sample(256, rng)
    t0 = time.perf_counter()
    for _ in range(batches):
        sampler.sample(256, rng)
    dt = time.perf_counter() - t0
    return {'episodes': len(sampler.episodes), 'transitions': len(sampler),
            'cache_build_episodes_s': len(sampler.episodes) / decode_s,
            'reader_transitions_s': batches * 256 / dt, 'batch_ms': 1000 * dt / batches}


def learner_transitions_s(steps: int) -> float:
    """Baseline: transitions/s one minimal CPU learner update consumes (batch 256, 2 cams 64x64)."""
    import torch
    from torch import nn
    enc = nn.Sequential(nn.Conv2d(3, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten())
    feat = enc(torch.zeros(1, 3, 64, 64)).shape[1]
    critic = nn.Sequential(nn.Linear(2 * feat + 60 + 5, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                           nn.Linear(256, 7))
    opt = torch.optim.Adam(list(enc.parameters()) + list(critic.parameters()), 1e-4)
    b = 256
    imgs = torch.rand(2 * b, 3, 64, 64)
    other = torch.rand(b, 65)

    def step():
        z = enc(imgs).reshape(b, -1)
        loss = critic(torch.cat([z, other], 1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * b / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='2 episodes x 60 ticks per cell (smoke check)')
    ap.add_argument('--keep', default='', help='keep the recorded data in this directory')
    args = ap.parse_args()
    episodes, steps = (2, 60) if args.quick else (3, 400)
    tmp = Path(tempfile.mkdtemp(prefix='bench_recorder_'))
    data = Path(args.keep) if args.keep else tmp / 'data'
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    try:
        rec = record(data, episodes, steps)
        raw = raw_write_mb_s(tmp, 1.0 if args.quick else 3.0)
        rd = reader(data, 10 if args.quick else 50)
        try:
            learn = learner_transitions_s(2 if args.quick else 5)
        except ImportError:
            learn = float('nan')
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    required = CELLS * len(CAMERAS) * PX * PX * 3 * 20 / 1e6
    drops = rec['dropped_messages'] + rec['incomplete_ticks'] + rec['missing_ticks']
    result = {
        'quick': args.quick, 'cells': CELLS, 'cameras': CELLS * len(CAMERAS), 'image_px': PX,
        'episodes_per_cell': episodes, 'steps': steps, 'recording': rec,
        'required_image_mb_s': required, 'raw_mcap_write_mb_s': raw, 'reader': rd,
        'learner_transitions_s': learn,
        'ratios': {
            'recorded_vs_offered_messages': rec['messages_recorded'] / max(rec['messages_published'], 1),
            'written_vs_required_mb_s': rec['written_mb_s'] / required,
            'raw_write_headroom': raw / required,
            'reader_vs_learner': rd['reader_transitions_s'] / learn if learn == learn else None,
        },
        'drops_total': drops,
    }
    print(f"recording: {rec['episodes']}/{rec['episodes_expected']} episodes, {rec['ticks']} ticks, "
          f"{rec['messages_recorded']} of {rec['messages_published']} data messages "
          f"(ratio {result['ratios']['recorded_vs_offered_messages']:.4f})")
    print(f"  drops: {rec['dropped_messages']} lost, {rec['incomplete_ticks']} incomplete ticks, "
          f"{rec['missing_ticks']} missing ticks; missed periods seen by the recorder "
          f"{rec['missed_period_ticks']}, by the cells' own timers {rec['cell_missed_periods']} "
          f"(rate_ok {rec['rate_ok_episodes']}/{rec['episodes']} episodes)")
    print(f"  written {rec['written_mb_s']:.1f} MB/s for a required {required:.1f} MB/s of images "
          f"(ratio {result['ratios']['written_vs_required_mb_s']:.2f}); recorder CPU "
          f"{rec['recorder_cpu_pct_per_cell']:.0f} % of a core per cell")
    print(f"  baseline raw rosbags MCAP write {raw:.0f} MB/s = {result['ratios']['raw_write_headroom']:.0f}x "
          f"the required rate")
    print(f"reader: {rd['reader_transitions_s']:.0f} transitions/s (batch 256 in {rd['batch_ms']:.1f} ms, "
          f"{rd['transitions']} transitions, cache built at {rd['cache_build_episodes_s']:.2f} episodes/s)")
    if learn == learn:
        print(f"  baseline CPU learner consumes {learn:.0f} transitions/s: ratio "
              f"{result['ratios']['reader_vs_learner']:.1f}x")
    out = ROOT / 'bench' / 'results'
    out.mkdir(parents=True, exist_ok=True)
    (out / 'recorder.json').write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0 if drops == 0 and rec['episodes'] == rec['episodes_expected'] else 1


if __name__ == '__main__':
    sys.exit(main())
