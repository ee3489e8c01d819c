"""Kill -9 of `chef explore` in the middle of a trial, then the same command again (issue 16.6).

The trial resumes from its newest periodic checkpoint (not from update 0), reaches its full update
count, its metrics.csv holds every logged step once and in order, and once the rerun has finished
no process of the run's local Ray (the killed run's orphaned agents included) and no Ray temporary
directory is left. ROS-free: the episodes are written by the real recorder core from a synthetic
cell (chef_trainer's test helper), so the test takes ~1 min on 2 loaded cores. The kill tests of the
other stages: test_loop_kill.py (collect, finetune), test_loop_e2e.py (execute); shared helpers:
loop_kill.py.
"""

import json
import re
import subprocess
import time

import pytest

from chef_loop.ray_session import ray_processes, ray_temp_dir
from loop_kill import (ChefCommand, assert_no_process_left, latest_step, metrics_steps,
                       record_synthetic_episodes)

STEPS, EVERY = 3000, 100          # updates per trial, updates between checkpoints (~200 updates/s)
EXPLORE = ['explore.trials=1', 'explore.max_concurrent=1', f'explore.steps={STEPS}',
           f'explore.checkpoint_every={EVERY}']


@pytest.mark.parametrize('victim', ['driver', 'group'])
def test_explore_killed_mid_trial_resumes_from_its_checkpoint_and_leaves_no_ray_behind(tmp_path, victim):
    runs = tmp_path / 'runs'
    run_dir = runs / 'tiny'
    trial_dir = run_dir / 'iter_00' / 'explore' / 'trials' / 'trial_000'
    assert record_synthetic_episodes(run_dir / 'data', 0, 4, 30) == 4
    # 1. kill -9 after the trial's first periodic checkpoint: the driver alone (its Ray agents are
    #    orphaned, the trial worker trains on for a few seconds) or its whole process group
    killed = ChefCommand(['explore'], runs, EXPLORE)
    killed.wait_for(lambda: latest_step(trial_dir) is not None, timeout_s=240)
    killed_at = latest_step(trial_dir)
    if killed.proc.poll() is None:
        killed.kill(victim)
    out = killed.output()
    assert killed_at is not None and EVERY <= killed_at < STEPS, f'no mid-trial checkpoint:\n{out[-3000:]}'
    assert not (trial_dir / 'result.json').exists()
    assert ray_temp_dir(run_dir).is_dir()          # what the kill left for the rerun to clean up
    if victim == 'driver':                         # Ray's agents outlive their driver
        time.sleep(2.0)
        assert ray_processes(run_dir), 'a kill -9 of the driver alone left no Ray process (test premise)'

    # 2. the same command again
    rerun = ChefCommand(['explore'], runs, EXPLORE)
    rc, out = rerun.finish(timeout_s=300)
    assert rc == 0, out[-4000:]
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
    assert metrics_steps(trial_dir) == list(range(10, STEPS + 1, 10))   # log_every 10: each step once

    # 3. nothing of either run's local Ray survives the rerun (30 s grace at most)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (ray_processes(run_dir) or ray_temp_dir(run_dir).exists()):
        time.sleep(0.5)
    assert ray_processes(run_dir) == {}
    assert not ray_temp_dir(run_dir).exists()
    tmp = str(ray_temp_dir(run_dir))
    leftover = subprocess.run(['pgrep', '-f', tmp], capture_output=True, text=True).stdout.split()
    assert leftover == [], leftover                            # raylet, gcs_server, dashboard by session dir
    assert_no_process_left(killed, rerun)                      # nor any other process either run started
