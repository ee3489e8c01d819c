"""`chef bench fleet` measures the sim graph as `chef run sim` starts it: the same nodes per cell, the
graph's executor choice in each node's environment, the state preset without images on both the
bridge and the recorder; and its CPU reading is a process's utime + stime."""

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

WS = Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def bench_fleet():
    spec = importlib.util.spec_from_file_location('bench_fleet', WS / 'bench' / 'bench_fleet.py')
    mod = importlib.util.module_from_spec(spec)
    sys.modules['bench_fleet'] = mod             # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_fleet_runs_the_sim_graph_per_cell(bench_fleet, tmp_path):
    specs = bench_fleet.graph_specs(bench_fleet.PRESETS['state'], 2, 50, str(tmp_path))
    assert sorted(s.fqn for s in specs) == sorted(
        f'/cell{i}/{n}' for i in range(2) for n in ('sim_bridge', 'safety_filter', 'policy', 'recorder'))
    by = {s.fqn: s for s in specs}
    assert by['/cell1/sim_bridge'].parameters['render_images'] is False
    assert by['/cell1/sim_bridge'].parameters['episode_steps'] == 50
    assert by["/cell1/sim_bridge"].parameters["episodes"] == 0       # the bench starts the episodes
    assert by['/cell0/recorder'].parameters['images'] is False
    assert by['/cell0/recorder'].parameters['data_dir'] == str(tmp_path)
    assert by['/cell0/policy'].parameters['policy'] == 'scripted'
    # the executor the graph gives its nodes reaches the bench's processes; the recorder has none
    assert {by[f'/cell0/{n}'].env.get('CHEF_RCLPY_EXECUTOR') for n in ('sim_bridge', 'safety_filter', 'policy')} \
        == {'events'}
    assert 'CHEF_RCLPY_EXECUTOR' not in by['/cell0/recorder'].env
    single = bench_fleet.graph_specs(bench_fleet.PRESETS['3x64'], 1, 50, str(tmp_path), executor='single')
    assert {s.env.get('CHEF_RCLPY_EXECUTOR') for s in single if s.name != 'recorder'} == {'single'}
    bridge = next(s for s in single if s.name == 'sim_bridge')
    assert bridge.parameters['render_images'] is True and bridge.parameters['image_size'] == 64


def test_proc_cpu_counts_this_process_cpu(bench_fleet):
    before = bench_fleet.proc_cpu_s(os.getpid())
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert bench_fleet.proc_cpu_s(os.getpid()) - before >= 0.25
    assert bench_fleet.proc_cpu_s(2 ** 22 + 12345) == 0.0          # no such process
