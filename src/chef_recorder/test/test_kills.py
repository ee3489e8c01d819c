"""Kill tests of a recording sim graph (`chef run sim`: MuJoCo bridge, scripted policy, safety filter,
recorder - one process each): the recorder, the policy or the bridge is killed with SIGKILL in the
middle of an episode. In every case the graph stops (all four are required while it records), no
completed episode is lost, and the interrupted episode shows as PARTIAL in `chef data ls`.

~15-40 s each: the bridge loads MuJoCo (5-15 s on two busy cores), then 60-tick episodes run in
lockstep until the kill."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chef_bringup.cli import main as chef
from chef_bringup.runner import die_with_parent
from chef_contract.testing import ros_env, unique_domain_id, wait_for
from chef_recorder.dataset import Dataset
from chef_recorder.layout import DataLayout, mcap_file

pytest.importorskip('chef_sim.bridge_node')
pytest.importorskip('chef_policy.policy_node')

STEPS = 60
GRAPH_ARGS = ['cells:=1', 'clock:=lockstep', 'preset:=fast', 'image_size:=32', f'episode_steps:={STEPS}',
              'episodes:=100', 'policy:=scripted']
EXECUTABLES = {'recorder': 'chef_recorder/recorder', 'policy': 'chef_policy/policy_node',
               'sim_bridge': 'chef_sim/sim_bridge'}


def child_pid(parent: int, executable: str) -> int:
    """Pid of the runner's child process running `executable` (lib/<package>/<name>)."""
    for d in Path('/proc').iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            cmd = (d / 'cmdline').read_bytes().split(b'\0')
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and any(c.decode(errors='replace').endswith(executable) for c in cmd[:2]):
            return int(d.name)
    raise AssertionError(f'no {executable} process under the runner {parent}')


def published(layout):
    return {p.name for _, p in layout.iter_bags() if (p / 'SHA256SUMS').exists()}


@pytest.mark.parametrize('victim', ['recorder', 'policy', 'sim_bridge'])
def test_a_killed_node_stops_the_graph_and_loses_no_completed_episode(victim, tmp_path, capsys):
    data = tmp_path / 'data'
    layout = DataLayout(data)
    log_path = tmp_path / 'graph.log'
    with open(log_path, 'w') as log:
        runner = subprocess.Popen(
            [sys.executable, '-m', 'chef_bringup.cli', 'run', 'sim', '--domain', str(unique_domain_id()),
             '--grace', '10', *GRAPH_ARGS, f'data_dir:={data}'],
            env=ros_env(0), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)
    try:
        assert wait_for(lambda: len(published(layout)) >= 2 or runner.poll() is not None, 150, 0.05), \
            'no two episodes recorded'
        assert runner.poll() is None, log_path.read_text()[-3000:]
        pid = child_pid(runner.pid, EXECUTABLES[victim])

        def mid_episode():
            """Every ended episode published, the next one under way with a chunk on disk."""
            partials = [d for _, d in layout.iter_partials()]
            return len(partials) == 1 and mcap_file(partials[0]).exists() \
                and mcap_file(partials[0]).stat().st_size > 4096 \
                and f'episode {partials[0].name[:8]} end:' not in log_path.read_text()
        assert wait_for(mid_episode, 30, 0.005)
        os.kill(pid, signal.SIGKILL)
        runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    out = log_path.read_text()
    assert runner.returncode != 0
    assert f'required node /cell0/{victim} failed (killed by SIGKILL); stopping the graph' in out

    # every episode the cell finished is recorded, whole; every one it started is there
    started = re.findall(r'episode ([0-9a-f]{8}) start:', out)
    ended = re.findall(r'episode ([0-9a-f]{8}) end:', out)
    assert len(ended) >= 2 and len(started) in (len(ended), len(ended) + 1)
    if victim == 'recorder':
        assert chef(['data', '--data-dir', str(data), 'ls']) == 0
        assert re.search(r'partial: episodes/cell0/\.partial/\w+  \[crashed\]', capsys.readouterr().out)
        assert chef(['data', '--data-dir', str(data), 'repair']) == 0
        capsys.readouterr()
    assert not list(layout.iter_partials())
    ds = Dataset(data)
    complete = {r.id[:8] for r in ds.query()}
    assert complete == set(ended)                      # first episode included: no command lost
    assert all(r.metadata['missing_ticks'] == 0 and r.metadata['incomplete_ticks'] == 0 for r in ds.query())
    partial = [r for r in ds.query(complete=None) if not r.metadata['complete']]
    assert [r.id[:8] for r in partial] == [i for i in started if i not in ended]
    m = partial[0].metadata
    if victim == 'recorder':
        assert m['status'] == 'recovered' and 'died before the episode ended' in m['abort_reason']
    else:
        assert m['status'] in ('abort', 'shutdown')
    assert 0 < m['steps_recorded'] < STEPS
    assert chef(['data', '--data-dir', str(data), 'ls']) == 0
    assert f'1 PARTIAL episodes not shown ({m["missing_ticks"]} ticks missing: {partial[0].id[:20]})' \
        in capsys.readouterr().out
    assert chef(['data', '--data-dir', str(data), 'ls', '--all']) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(partial[0].id[:20]))
    assert f'{m["status"]} PARTIAL' in row
