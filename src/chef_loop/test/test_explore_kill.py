"""Kill -9 of `chef explore` in the middle of a trial, then the same command again (issue 16.6).

The trial resumes from its newest periodic checkpoint (not from update 0), reaches its full update
count, its metrics.csv holds every logged step once and in order, and once the rerun has finished
no process of the run's local Ray (the killed run's orphaned agents included) and no Ray temporary
directory is left. ROS-free: the episodes are written by the real recorder core from a synthetic
cell (chef_trainer's test helper), so the test takes ~1 min on 2 loaded cores.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'chef_trainer' / 'test'))
from recorded import record_synthetic_episodes  # noqa: E402  (chef_trainer's test helper)

from chef_loop.ray_session import ray_processes, ray_temp_dir  # noqa: E402

TINY = Path(__file__).with_name('tiny.yaml')
STEPS, EVERY = 3000, 100          # updates per trial, updates between checkpoints (~200 updates/s)


def explore(runs_dir, **kw):
    cmd = [sys.executable, '-m', 'chef_bringup.cli', 'explore', '--config', str(TINY),
           '--set', f'runs_dir={runs_dir}', '--set', 'explore.trials=1', '--set', 'explore.max_concurrent=1',
           '--set', f'explore.steps={STEPS}', '--set', f'explore.checkpoint_every={EVERY}',
           '--no-progress']
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'), **kw)


def latest_step(trial_dir):
    p = trial_dir / 'latest.json'
    return json.loads(p.read_text())['step'] if p.is_file() else None


@pytest.mark.parametrize('victim', ['driver', 'group'])
def test_explore_killed_mid_trial_resumes_from_its_checkpoint_and_leaves_no_ray_behind(tmp_path, victim):
    runs = tmp_path / 'runs'
    run_dir = runs / 'tiny'
    trial_dir = run_dir / 'iter_00' / 'explore' / 'trials' / 'trial_000'
    assert record_synthetic_episodes(run_dir / 'data', 0, 4, 30) == 4
    # 1. kill -9 after the trial's first periodic checkpoint: the driver alone (its Ray agents are
    #    orphaned, the trial worker trains on for a few seconds) or its whole process group
    proc = explore(runs, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and latest_step(trial_dir) is None:
        time.sleep(0.05)
    killed_at = latest_step(trial_dir)
    if proc.poll() is None:
        if victim == 'driver':
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    out = proc.communicate()[0]
    assert killed_at is not None and EVERY <= killed_at < STEPS, f'no mid-trial checkpoint:\n{out[-3000:]}'
    assert not (trial_dir / 'result.json').exists()
    assert ray_temp_dir(run_dir).is_dir()          # what the kill left for the rerun to clean up
    if victim == 'driver':                         # Ray's agents outlive their driver
        time.sleep(2.0)
        assert ray_processes(run_dir), 'a kill -9 of the driver alone left no Ray process (test premise)'

    # 2. the same command again
    proc = explore(runs)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]
    if victim == 'driver':
        assert re.search(r'ray: killing \d+ process\(es\) a killed run left behind', out), out[-3000:]
    resumed = re.search(r'trial 0: resumes from update (\d+)', out)
    assert resumed, out[-3000:]
    step = int(resumed.group(1))
    assert killed_at <= step < STEPS and step % EVERY == 0
    summary = json.loads((trial_dir / 'summary.json').read_text())
    assert summary['started_from'].endswith(f'step_{step:09d}.pt') and summary['steps'] == STEPS
    result = json.loads((trial_dir / 'result.json').read_text())
    assert not result.get('error') and result['summary']['steps'] == STEPS
    assert (trial_dir / 'fqe.json').is_file()                 # the FQE score of the finished trial
    with open(trial_dir / 'metrics.csv', newline='') as f:
        steps = [int(r['step']) for r in csv.DictReader(f)]
    assert steps == list(range(10, STEPS + 1, 10))             # log_every 10: each step once, in order

    # 3. nothing of either run's local Ray survives the rerun (30 s grace at most)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (ray_processes(run_dir) or ray_temp_dir(run_dir).exists()):
        time.sleep(0.5)
    assert ray_processes(run_dir) == {}
    assert not ray_temp_dir(run_dir).exists()
    tmp = str(ray_temp_dir(run_dir))
    leftover = subprocess.run(['pgrep', '-f', tmp], capture_output=True, text=True).stdout.split()
    assert leftover == [], leftover                            # raylet, gcs_server, dashboard by session dir
