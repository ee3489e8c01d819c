"""The trainer node over real DDS: learns from recorded episodes, picks up new ones when a cell
announces an episode end, announces checkpoints on trainer/checkpoint, and after kill -9 resumes
at the step of its last checkpoint and stops at exactly max_updates."""

import json
import os
import signal
import subprocess
import time

import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.events import EpisodeEvent
from chef_contract.ros import create_contract_publisher, create_contract_subscription
from chef_contract.testing import executable, ros_env, unique_domain_id
from chef_policy.checkpoint import build_policy_from_checkpoint
from chef_trainer.metrics import read_metrics
from recorded import record_synthetic_episodes

CONFIG = {'learner': {
    'algorithm': 'crr', 'batch_size': 32, 'n_step': 3, 'log_every': 5, 'device': 'cpu',
    'network': {'obs_mode': 'state', 'state_keys': ['sawyer/joints/angle', 'gripper/grasp'],
                'use_wrench': False, 'use_prev_action': False, 'state_feature_dim': 32,
                'actor_torso': [32, 32], 'critic_torso': [32, 32]}},
    'online': {'live_fraction': 0.5}}


class Watcher:
    def __init__(self, domain):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node('trainer_test', context=self.ctx)
        self.announced = []
        create_contract_subscription(self.node, T.CHECKPOINT_ANNOUNCE,
                                     lambda m: self.announced.append(json.loads(m.data)),
                                     remap='/cell0/' + T.CHECKPOINT_ANNOUNCE)
        self.events = create_contract_publisher(self.node, T.EPISODE_EVENTS, remap='/cell0/episode/events')
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)

    def spin_until(self, cond, timeout, proc=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.1)
            if cond():
                return True
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f'trainer exited with {proc.returncode}')
        return False

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def start(domain, tmp_path, log_name, **params):
    args = [executable('chef_trainer', 'trainer'), '--ros-args']
    base = {'config': str(tmp_path / 'learner.yaml'), 'data_dir': str(tmp_path / 'data'),
            'run_dir': str(tmp_path / 'run'), 'publish_every': 25, 'min_transitions': 10,
            'poll_s': 30.0, 'torch_threads': 1, 'cells': 1}
    base.update(params)
    for k, v in base.items():
        args += ['-p', f'{k}:={json.dumps(v) if isinstance(v, str) else v}']
    log = open(tmp_path / log_name, 'w')
    return subprocess.Popen(args, env=ros_env(domain), stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(tmp_path))


@pytest.mark.timeout(240)
def test_trainer_learns_picks_up_new_episodes_and_resumes_after_kill(tmp_path):
    # > 20 s: two trainer processes start (torch + rclpy import) and learn a few hundred updates
    (tmp_path / 'learner.yaml').write_text(yaml.safe_dump(CONFIG))
    assert record_synthetic_episodes(tmp_path / 'data', 0, 3, 20) == 3
    domain = unique_domain_id()
    w = Watcher(domain)
    proc = start(domain, tmp_path, 'first.log')
    try:
        assert w.spin_until(lambda: any(a['step'] >= 50 for a in w.announced), 90, proc), \
            (tmp_path / 'first.log').read_text()[-3000:]
        # a cell finishes two more episodes: the recorder publishes them, the cell announces the end
        record_synthetic_episodes(tmp_path / 'data', 3, 2, 20)
        ev = EpisodeEvent(event='end', episode_id='ep0004', cell='cell0', source='sim',
                          triplet='rgb_test_triplet1', seed=4, stamp_ns=1, steps=20)
        w.events.publish(String(data=ev.to_json()))
        log = tmp_path / 'first.log'
        assert w.spin_until(lambda: '+2 episodes' in log.read_text(), 30, proc), log.read_text()[-3000:]
        assert '5 episodes' in log.read_text() and '2 live' in log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    latest = json.loads((tmp_path / 'run' / 'latest.json').read_text())
    killed_at = latest['step']
    assert killed_at >= 50 and killed_at % 25 == 0
    # the announcement sent just before the kill may still wait in the watcher's reader: take it
    w.spin_until(lambda: any(a['step'] == killed_at for a in w.announced), 5.0)
    ann = [a for a in w.announced if a['step'] == killed_at]
    assert ann and ann[-1]['sha256'] == latest['sha256']
    rows_before = read_metrics(tmp_path / 'run' / 'metrics.csv')

    # restart: resumes at the checkpointed step (announced again, latched), runs to max_updates
    w.announced.clear()
    target = killed_at + 60
    proc = start(domain, tmp_path, 'second.log', max_updates=target)
    try:
        assert w.spin_until(lambda: any(a['step'] == target for a in w.announced), 120, proc), \
            (tmp_path / 'second.log').read_text()[-3000:]
        # the restarted node starts at the checkpointed step (its log says so; its latched re-announce
        # of that step may be superseded before this watcher re-matches, so check the log) and never
        # announces a step below it
        second = (tmp_path / 'second.log').read_text()
        assert 'resumed:' in second and f', step {killed_at};' in second, second[-2000:]
        assert min(a['step'] for a in w.announced) >= killed_at
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        w.close()
    latest = json.loads((tmp_path / 'run' / 'latest.json').read_text())
    assert latest['step'] == target
    summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
    assert summary['steps'] == target and summary['started_from'].startswith('resumed:')
    steps = [int(r['step']) for r in read_metrics(tmp_path / 'run' / 'metrics.csv')]
    assert steps == list(range(5, target + 1, 5))          # rows past the checkpoint were redone once
    assert len(rows_before) >= killed_at // 5
    actor, net, sha = build_policy_from_checkpoint(latest['path'])
    assert sha == latest['sha256'] and net.state_keys == ('sawyer/joints/angle', 'gripper/grasp')
