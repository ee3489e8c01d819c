"""The sim graph's per-cell command path across processes: sim_bridge (lockstep, chef_sim) ->
policy_node -> safety_filter -> sim_bridge, started from config/graphs/sim.yaml exactly as
`chef run sim` starts them. A full 400-tick scripted episode: every tick gets exactly one command,
stamped with its observation stamp, through the safety filter, and the expert stacks. A pixel
checkpoint announced on trainer/checkpoint is hot-loaded into a running cell without a missed tick.

Slow-ish (~20-40 s each): the bridge process loads MuJoCo and the cell (~5-15 s on 2 busy cores),
then lockstep ticks of 'fast' physics through three processes."""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.events import EpisodeCommand
from chef_contract.graph import load_graph
from chef_contract.ros import msg_class, qos, stamp_to_ns
from chef_contract.spec import EPISODE_STEPS
from chef_contract.testing import (
    CellProbe, executable, ros_env, stop_process as stop, unique_domain_id, wait_for,
)
from chef_policy.policy_node import BASE_TOPICS

WS = Path(__file__).resolve().parents[3]
LISTEN = (T.POLICY_TWIST, T.TWIST_CMD, T.POLICY_STEP, T.EPISODE_EVENTS, T.SAFETY_STATUS, T.POLICY_INFO)
BRIDGE_OVERRIDES = ['-p', 'render_images:=false', '-p', 'lockstep_timeout_s:=5.0']


def start_cell(tmp_path, probe, domain, args, bridge_overrides):
    graph = load_graph(WS / 'config' / 'graphs' / 'sim.yaml')
    specs = {s.name: s for s in graph.resolve(args)}
    assert {'sim_bridge', 'policy', 'safety_filter'} <= set(specs)
    log = open(tmp_path / 'cell.log', 'w')
    procs = {}
    for name in ('safety_filter', 'policy', 'sim_bridge'):
        s = specs[name]
        extra = bridge_overrides if name == 'sim_bridge' else []
        procs[name] = subprocess.Popen([executable(s.package, s.executable)] + s.ros_args() + extra,
                                       env=ros_env(domain), stdout=log, stderr=subprocess.STDOUT)
    assert wait_for(lambda: probe.command.get_subscription_count() > 0        # sim_bridge
                    and probe.node.count_publishers(T.TWIST_CMD) > 0           # safety_filter
                    and probe.node.count_subscribers(T.POLICY_TWIST) > 0
                    and probe.get(T.POLICY_INFO), 120), 'cell not up'           # policy_node ready
    inputs = BASE_TOPICS + ((T.OBJECT_POSES,) if args.get('policy') == 'scripted' else ())
    assert wait_for(lambda: all(probe.node.count_subscribers(t) > 0 and probe.node.count_publishers(t) > 0
                                for t in inputs), 60), 'policy inputs not matched'
    time.sleep(1.0)
    return procs, log


def test_pixel_checkpoint_hot_loaded_into_a_running_cell(tmp_path):
    """A cell started with no policy steps on zero commands; a pixel checkpoint announced on
    trainer/checkpoint mid-episode takes over between two ticks - no tick without a command."""
    pytest.importorskip('chef_sim.bridge_node')
    import torch

    from chef_policy.checkpoint import save_checkpoint
    from chef_policy.networks import MultiTaskActor, NetworkConfig
    cfg = NetworkConfig(image_size=64, encoder_channels=(8, 16), encoder_kernels=(8, 4),
                        encoder_strides=(4, 2), image_feature_dim=16, state_feature_dim=32,
                        actor_torso=(32,))
    torch.manual_seed(0)
    sha = save_checkpoint(tmp_path / 'pixels.pt', {'actor': MultiTaskActor(cfg)}, cfg)
    domain = unique_domain_id()
    probe = CellProbe(domain, LISTEN)
    procs, log = {}, None
    try:
        procs, log = start_cell(
            tmp_path, probe, domain,
            {'cells': 1, 'clock': 'lockstep', 'record': False, 'preset': 'fast', 'policy': '',
             'image_size': 64},
            ['-p', 'episode_steps:=80', '-p', 'lockstep_timeout_s:=5.0',
             '-p', 'cameras:=["basket_front_left", "basket_front_right"]'])
        announce = probe.node.create_publisher(msg_class('std_msgs/msg/String'), T.CHECKPOINT_ANNOUNCE,
                                               qos('latched', 'pub'))
        probe.command.publish(String(data=EpisodeCommand(op='start', seed=5).to_json()))
        assert wait_for(lambda: len(probe.get(T.POLICY_TWIST)) >= 10, 60), 'no zero commands'
        announce.publish(String(data=json.dumps({'path': str(tmp_path / 'pixels.pt'), 'sha256': sha})))
        assert wait_for(lambda: any(e.event == 'end' for e in probe.events())
                        or any(p.poll() is not None for p in procs.values()), 180), 'no end event'
        assert all(p.poll() is None for p in procs.values()), f'a node died; log {log.name}'
        start = next(e for e in probe.events() if e.event == 'start')
        end = next(e for e in probe.events() if e.event == 'end')
        time.sleep(0.5)
        steps = [json.loads(m.data) for m in probe.get(T.POLICY_STEP)]
        steps = [s for s in steps if start.stamp_ns <= s['stamp_ns'] < end.stamp_ns]   # end: terminal obs
        stamps = [s['stamp_ns'] for s in steps]
        assert len(stamps) == len(set(stamps)) == end.steps == 80     # every tick: one command
        kinds = ['zero' if s['tick'] is None else s['checkpoint_sha256'] for s in steps]
        switch = kinds.index(sha)
        assert switch >= 10 and set(kinds[:switch]) == {'zero'} and set(kinds[switch:]) == {sha}
        assert [s['tick'] for s in steps[switch:]] == list(range(len(steps) - switch))
        # before: not ready; the first ticks after the swap may wait for the new image topics
        assert {s.get('zero_reason') for s in steps[:switch]} <= {'not_ready', 'inputs_missing'}
        safe = {stamp_to_ns(m.header.stamp) for m in probe.get(T.TWIST_CMD)}
        assert set(stamps) <= safe
        info = json.loads(probe.get(T.POLICY_INFO)[-1].data)
        assert info['checkpoint_sha256'] == sha and info['config']['obs_mode'] == 'pixels'
    finally:
        codes = {n: stop(p) for n, p in procs.items()}
        probe.close()
        if log is not None:
            log.close()
    assert all(c == 0 for c in codes.values()), f'exit codes {codes}; log {tmp_path / "cell.log"}'


def test_scripted_cell_runs_a_full_episode_through_the_safety_filter(tmp_path):
    pytest.importorskip('chef_sim.bridge_node')
    domain = unique_domain_id()
    probe = CellProbe(domain, LISTEN)
    procs, log = {}, None
    try:
        procs, log = start_cell(tmp_path, probe, domain,
                                {'cells': 1, 'clock': 'lockstep', 'record': False, 'preset': 'fast',
                                 'policy': 'scripted'}, BRIDGE_OVERRIDES)
        # the CHEF loop's way of asking for an episode: a start command on episode/command
        probe.command.publish(String(data=EpisodeCommand(op='start', triplet='rgb_test_triplet1',
                                                         seed=2).to_json()))
        assert wait_for(lambda: any(e.event == 'end' for e in probe.events())
                        or any(p.poll() is not None for p in procs.values()), 240), 'no end event'
        assert all(p.poll() is None for p in procs.values()), f'a node died; log {log.name}'
        start = next(e for e in probe.events() if e.event == 'start')
        end = next(e for e in probe.events() if e.event == 'end')
        assert end.steps == EPISODE_STEPS
        time.sleep(0.5)
        policy = [stamp_to_ns(m.header.stamp) for m in probe.get(T.POLICY_TWIST)]
        safe = [stamp_to_ns(m.header.stamp) for m in probe.get(T.TWIST_CMD)]
        ticks = [s for s in policy if start.stamp_ns <= s < end.stamp_ns]      # end: terminal obs
        assert len(set(ticks)) == EPISODE_STEPS                   # a command for every observed tick
        assert set(ticks) <= set(safe)                            # each went through the filter
        steps = [json.loads(m.data) for m in probe.get(T.POLICY_STEP)]
        acted = [s for s in steps if s.get('tick') is not None and s['stamp_ns'] >= start.stamp_ns]
        assert [s['tick'] for s in acted[:EPISODE_STEPS]] == list(range(EPISODE_STEPS))
        info = json.loads(probe.get(T.POLICY_INFO)[-1].data)
        assert info['policy_id'].startswith('scripted') and info['timing'] == 'lockstep'
        status = json.loads(probe.get(T.SAFETY_STATUS)[-1].data)
        assert status['counters']['stopped_stale'] == 0 and status['counters']['rejected_nonfinite'] == 0
        assert end.success, f'the expert did not stack (returns {end.returns})'
    finally:
        codes = {n: stop(p) for n, p in procs.items()}
        probe.close()
        if log is not None:
            log.close()
    assert all(c == 0 for c in codes.values()), f'exit codes {codes}; log {tmp_path / "cell.log"}'
    # a second command for one tick only answers a tick the bridge re-sent (its command was lost
    # under load): repeats <= the bridge's own count of re-sends, which it logs when it closes
    resends = [int(m) for m in re.findall(r"'resends': (\d+)", (tmp_path / 'cell.log').read_text())]
    assert resends, 'the bridge logged no closing counters'
    assert len(ticks) - len(set(ticks)) <= sum(resends), f'{len(ticks) - len(set(ticks))} repeated commands'
