"""Twins of the launch_testing tests that skip here (launch, launch_ros and launch_testing are not
installable from PyPI): the same graph descriptions, started by `chef run`, with the same checks.
These cannot skip.

* test_launch_testing.py (selfcheck graph: the subscriber reports received messages) -> below.
* chef_real/test/test_real_launch.py (real graph: contract topics up, Servo and the gripper
  controller on the safety filter's topics, clean exit) -> chef_real/test/test_real_cell_emulated.py,
  on the MuJoCo stand-in for the drivers (hardware:=mujoco) instead of ros2_control mock hardware.

Every launch file is a two-line wrapper of `generate_graph_launch_description(<graph>)`, so what it
starts is what `chef run <graph>` starts; the static check below holds them to that.
"""

import ast
import signal
import subprocess
import time
from pathlib import Path

import pytest

from chef_contract.graph import find_graph, load_graph
from chef_contract.testing import executable, ros_env, unique_domain_id

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'


def test_selfcheck_subscriber_reports_messages_like_the_launch_test():
    proc = subprocess.Popen([executable('chef_bringup', 'chef'), 'run', 'selfcheck'], env=ros_env(unique_domain_id()),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    deadline = time.monotonic() + 60          # the launch test waits 15 s after ReadyToTest; start-up here too
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            out.append(line)
            if 'received' in line and '[/dds_probe_sub]' in line:
                break
        assert any('received' in line for line in out), ''.join(out)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, ''.join(out) + rest


@pytest.mark.parametrize('launch_file', sorted(p.name for p in LAUNCH_DIR.glob('*.launch.py')))
def test_every_launch_file_reads_one_graph_description(launch_file):
    tree = ast.parse((LAUNCH_DIR / launch_file).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') ==
             'generate_graph_launch_description']
    assert len(calls) == 1 and isinstance(calls[0].args[0], ast.Constant), launch_file
    graph = calls[0].args[0].value
    assert launch_file == f'{graph}.launch.py'
    load_graph(find_graph(graph)).resolve({})        # the description it launches exists and resolves
