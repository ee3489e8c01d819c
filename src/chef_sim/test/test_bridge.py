"""sim_bridge over real DDS, cross-process: two cells from config/graphs/sim.yaml (namespaces cell0 and
cell1, per-cell /clock) in lockstep, and one realtime cell. Checks the published contract, that the
cell obeys twist + gripper commands, the lockstep watchdog and tick re-sends, NaN / out-of-range rejection, the 100 ms
realtime watchdog, episode events, the start/stop services, abort on SIGINT, and that a cell of a
recording graph starts no episode before its recorder is ready.

Slow-ish (each bridge process imports MuJoCo + dm_control and loads the cell: ~5-15 s to come up on
2 busy cores; the first run of a checkout compiles the cell once, ~10 s, then it is cached)."""

import json
import math
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from chef_contract import topics as T
from chef_contract.events import EpisodeCommand
from chef_contract.frames import messages_to_frame
from chef_contract.graph import load_graph
from chef_contract.ros import (
    create_contract_publisher, msg_class, ns_to_stamp, qos, stamp_to_ns,
)
from chef_contract.spec import REWARD_TERMS
from chef_contract.testing import (
    CellProbe, executable, ros_env, stop_process as stop, unique_domain_id, wait_for,
)

WS = Path(__file__).resolve().parents[3]
CAM = 'basket_front_left'
TICK_TOPICS = T.tick_topics([CAM])
OVERRIDES = ['-p', 'preset:=fast', '-p', 'image_size:=32', '-p', f'cameras:=["{CAM}"]',
             '-p', 'episode_steps:=8', '-p', 'lockstep_timeout_s:=0.4',
             '-p', 'first_tick_timeout_s:=1.2']



class Probe(CellProbe):
    """Test-side node of one cell: records per-tick messages by stamp, events, clock; sends commands."""

    def __init__(self, domain: int, ns: str, clock_topic: str):
        super().__init__(domain, (T.EPISODE_EVENTS,), ns=ns, spin=False)
        self.ticks = {}                     # stamp_ns -> {topic: msg}
        self.receipts = {}                  # stamp_ns -> joint_states messages received (re-sends)
        self.clock = []
        for name in TICK_TOPICS:
            self.listen(name, self._on_tick(name))
        self.node.create_subscription(msg_class('rosgraph_msgs/msg/Clock'), clock_topic,
                                      self._on_clock, qos('clock', 'sub'))
        self.twist = create_contract_publisher(self.node, T.TWIST_CMD)
        self.gripper = create_contract_publisher(self.node, T.GRIPPER_CMD)
        self.start_srv = self.node.create_client(Trigger, T.EPISODE_START)
        self.stop_srv = self.node.create_client(Trigger, T.EPISODE_STOP)
        self.start()

    def _on_clock(self, msg):
        with self.lock:
            self.clock.append(stamp_to_ns(msg.clock))

    def _on_tick(self, name):
        def cb(msg):
            with self.lock:
                stamp = stamp_to_ns(msg.header.stamp)
                self.ticks.setdefault(stamp, {})[name] = msg
                if name == T.JOINT_STATES:
                    self.receipts[stamp] = self.receipts.get(stamp, 0) + 1
        return cb

    def complete(self, stamp):
        with self.lock:
            return len(self.ticks.get(stamp, {})) == len(TICK_TOPICS)

    def frame(self, stamp):
        with self.lock:
            return messages_to_frame(self.ticks[stamp], cameras=[CAM], require_objects=True)

    def event(self, kind, after=0):
        found = [e for e in self.events()[after:] if e.event == kind]
        return found[-1] if found else None

    def send(self, stamp_ns, v=(0.0, 0.0, 0.0), yaw=0.0, gripper=0.0, frame='base_link'):
        self.gripper.publish(Float64MultiArray(data=[gripper]))
        tw = TwistStamped()
        tw.header.stamp, tw.header.frame_id = ns_to_stamp(stamp_ns), frame
        tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = v
        tw.twist.angular.z = yaw
        self.twist.publish(tw)

    def call(self, client):
        assert client.wait_for_service(timeout_sec=10.0)
        fut = client.call_async(Trigger.Request())
        assert wait_for(fut.done, 10.0)
        return fut.result()

    def close(self):
        self.spin.close()


def launch(args, domain, log):
    return subprocess.Popen([executable('chef_sim', 'sim_bridge')] + args, env=ros_env(domain),
                            stdout=log, stderr=subprocess.STDOUT)



@pytest.fixture(scope='module')
def cells(tmp_path_factory):
    """Two lockstep cells exactly as the sim graph starts them (cells:=2), plus test overrides."""
    domain = unique_domain_id()
    graph = load_graph(WS / 'config' / 'graphs' / 'sim.yaml')
    specs = [s for s in graph.resolve({'cells': 2, 'clock': 'lockstep', 'record': False})   # no recorder to wait for
             if s.package == 'chef_sim']
    assert [s.fqn for s in specs] == ['/cell0/sim_bridge', '/cell1/sim_bridge']
    log = open(tmp_path_factory.mktemp('bridge') / 'bridges.log', 'w')
    procs = [launch(s.ros_args() + OVERRIDES, domain, log) for s in specs]
    probes = [Probe(domain, f'/cell{i}', f'/cell{i}/clock') for i in range(2)]
    try:
        for p in probes:
            assert p.start_srv.wait_for_service(timeout_sec=60.0), 'bridge did not come up'
        yield probes, procs
    finally:
        codes = [stop(p) for p in procs]
        for p in probes:
            p.close()
        log.close()
        assert codes == [0, 0], f'bridge exit codes {codes}; log {log.name}'


def next_tick(probe, after, timeout=10.0):
    """The first complete tick stamped later than `after` (ns)."""
    def ready():
        with probe.lock:
            stamps = sorted(s for s in probe.ticks if s > after)
        return stamps and probe.complete(stamps[0])
    assert wait_for(ready, timeout), f'no complete tick after {after}'
    with probe.lock:
        return sorted(s for s in probe.ticks if s > after)[0]


def test_lockstep_publishes_the_contract_and_obeys(cells):
    (p, other), _ = cells
    n_events = len(p.events())
    p.command.publish(String(data=EpisodeCommand(op='start', triplet='rgb_test_triplet2', seed=7,
                                                  tags={'stage': 'test'}).to_json()))
    assert wait_for(lambda: p.event('start', n_events) is not None, 20.0)
    start = p.event('start', n_events)
    assert start.triplet == 'rgb_test_triplet2' and start.seed == 7 and start.tags == {'stage': 'test'}
    assert start.objects == ['r5', 'g2', 'b3'] and start.source == 'sim' and start.cell == 'cell0'
    t0 = next_tick(p, start.stamp_ns - 1)
    assert t0 == start.stamp_ns
    assert wait_for(lambda: t0 in p.clock, 5.0)                  # /cell0/clock carries the tick
    f0 = p.frame(t0)
    with p.lock:
        msgs = dict(p.ticks[t0])
    img = msgs[T.image_topic(CAM)]
    assert (img.height, img.width, img.encoding) == (32, 32, 'rgb8')
    info = msgs[T.camera_info_topic(CAM)]
    assert info.k[0] == pytest.approx(0.5 * 32 / math.tan(math.radians(35) / 2))
    assert list(msgs[T.JOINT_STATES].name)[-1] == 'finger_joint' and len(msgs[T.JOINT_STATES].name) == 8
    assert list(msgs[T.REWARD_TERMS].name) == list(REWARD_TERMS)
    assert all(v == 0.0 for v in msgs[T.REWARD_TERMS].position)      # no transition led to tick 0
    assert len(msgs[T.OBJECT_POSES].poses) == 3
    assert f0['action/environment'][7] == -255.0

    # drive +x at full speed with the gripper closing; the cell must follow
    stamp, frames = t0, [f0]
    for _ in range(8):
        p.send(stamp, v=(0.07, 0.0, 0.0), gripper=0.8)
        stamp = next_tick(p, stamp)
        frames.append(p.frame(stamp))
    assert wait_for(lambda: p.event('end', n_events) is not None, 10.0)
    end = p.event('end', n_events)
    assert end.steps == 8 and end.episode_id == start.episode_id and end.success is False
    assert set(end.returns) == set(REWARD_TERMS) and end.tags == {'stage': 'test'}
    dx = frames[-1]['sawyer/pinch/pose'][0] - frames[0]['sawyer/pinch/pose'][0]
    assert 0.6 * 8 * 0.05 * 0.07 < dx < 1.1 * 8 * 0.05 * 0.07      # obeyed the twist (x m)
    assert frames[-1]['action/environment'][7] == 255.0             # and the gripper command
    assert frames[-1]['gripper/joints/angle'][0] > 50
    with p.lock:
        clocks = list(p.clock)
    assert clocks == sorted(clocks) and len(set(np.diff([c for c in clocks if c >= t0]))) == 1
    with other.lock:                                                # cell1 untouched so far
        assert not other.ticks and not other.clock


def test_cells_run_independently_via_services(cells):
    (p0, p1), _ = cells
    n0 = len(p0.ticks)
    res = p1.call(p1.start_srv)
    assert res.success, res.message
    assert wait_for(lambda: p1.event('start') is not None, 10.0)
    start = p1.event('start')
    assert start.cell == 'cell1' and start.triplet == 'rgb_test_triplet1'
    assert start.seed == 1_000_003                       # seed 0 + cell 1 * stride + episode 0
    assert not p1.call(p1.start_srv).success             # refused while running
    t = next_tick(p1, start.stamp_ns - 1)
    p1.send(t, v=(0.0, 0.0, 0.07))
    next_tick(p1, t)
    assert len(p0.ticks) == n0                            # cell0 did not move
    res = p1.call(p1.stop_srv)
    assert res.success
    assert wait_for(lambda: p1.event('abort') is not None, 10.0)
    assert p1.event('abort').reason == 'stop service' and p1.event('abort').steps == 1
    assert not p1.call(p1.stop_srv).success


def test_invalid_commands_rejected_and_lockstep_watchdog(cells):
    (p, _), _ = cells
    n = len(p.events())
    p.command.publish(String(data=EpisodeCommand(op='start', seed=3).to_json()))
    assert wait_for(lambda: p.event('start', n) is not None, 20.0)
    t0 = next_tick(p, p.event('start', n).stamp_ns - 1)
    f0 = p.frame(t0)
    for bad in ({'v': (float('nan'), 0.0, 0.0)}, {'v': (0.5, 0.0, 0.0)}, {'yaw': float('inf')},
                {'v': (0.07, 0, 0), 'frame': 'tool0'}, {'v': (0.5, 0, 0), 'gripper': float('nan')},
                {'v': (0.5, 0, 0), 'gripper': 2.0}):
        p.send(t0, **bad)
    sent = time.monotonic()
    t1 = next_tick(p, t0)                                 # only the watchdog can advance the tick
    waited = time.monotonic() - sent
    assert waited > 0.8                                    # tick 0: first_tick_timeout_s = 1.2
    assert t1 - t0 == 50_000_000                           # one tick: re-sends never advance time
    assert p.receipts[t0] >= 3                             # tick 0 re-sent every resend_s = 0.25 s
    f1 = p.frame(t1)
    moved = np.linalg.norm(f1['sawyer/pinch/pose'][:3] - f0['sawyer/pinch/pose'][:3])
    assert moved < 0.002                                   # zero velocity was applied
    assert f1['action/environment'][7] == -255.0           # NaN gripper never reached the physics
    p.send(t1, v=(0.0, 0.07, 0.0))                         # a valid command is obeyed at once
    sent = time.monotonic()
    t2 = next_tick(p, t1)
    assert time.monotonic() - sent < 0.25
    sent = time.monotonic()                                # later ticks: lockstep_timeout_s = 0.4
    next_tick(p, t2)
    assert 0.25 < time.monotonic() - sent < 1.0
    p.command.publish(String(data=EpisodeCommand(op='stop').to_json()))
    assert wait_for(lambda: p.event('abort', n) is not None, 10.0)


def test_realtime_watchdog_and_abort_on_sigint(tmp_path):
    domain = unique_domain_id()
    log = open(tmp_path / 'rt.log', 'w')
    proc = launch(['--ros-args', '-r', '__ns:=/cell5', '-p', 'clock_mode:=realtime', '-p', 'preset:=fast',
                   '-p', 'render_images:=false', '-p', 'autostart:=true'], domain, log)
    p = Probe(domain, '/cell5', '/clock')
    code = None
    try:
        assert wait_for(lambda: p.event('start') is not None, 60.0), 'no start event'
        start = p.event('start')
        assert abs(start.stamp_ns - time.time_ns()) < 30e9      # wall-clock stamps
        end = time.monotonic() + 1.0
        while time.monotonic() < end:                            # command at 50 Hz for 1 s
            p.send(0, v=(0.0, 0.0, -0.07))
            time.sleep(0.02)
        moving = [m.twist.linear.z for s, m in
                  ((s, t.get(T.WRIST_TWIST)) for s, t in sorted(p.ticks.items())) if m is not None][-5:]
        assert np.mean(moving) < -0.03                           # the TCP descends while commanded
        time.sleep(0.6)                                          # silence > 100 ms: watchdog
        with p.lock:
            last = [t[T.WRIST_TWIST] for s, t in sorted(p.ticks.items()) if T.WRIST_TWIST in t][-3:]
        assert all(abs(m.twist.linear.z) < 0.005 for m in last)
        assert not p.clock                                       # no /clock in realtime mode
        n_ticks = len(p.ticks)
        assert 20 <= n_ticks <= 60                               # ~20 Hz for ~1.6 s + start-up
        code = stop(proc)
        assert wait_for(lambda: p.event('abort') is not None, 5.0)
        assert p.event('abort').reason == 'shutdown'
    finally:
        if code is None:
            code = stop(proc)
        p.close()
        log.close()
    assert code == 0, (tmp_path / 'rt.log').read_text()[-3000:]



def test_no_episode_starts_before_the_recorder_is_ready(tmp_path):
    """wait_for_recorder (set by sim graphs that record): a start command waits until a live
    recorder says `ready` on recorder/status, the start service is refused meanwhile."""
    domain = unique_domain_id()
    log = open(tmp_path / 'wait.log', 'w')
    proc = launch(['--ros-args', '-r', '__ns:=/cell6', '-r', '/clock:=/cell6/clock'] + OVERRIDES
                  + ['-p', 'render_images:=false', '-p', 'wait_for_recorder:=true'], domain, log)
    p = Probe(domain, '/cell6', '/cell6/clock')
    recorder = create_contract_publisher(p.node, T.RECORDER_STATUS)
    code = None
    try:
        assert p.start_srv.wait_for_service(timeout_sec=60.0), 'bridge did not come up'
        res = p.call(p.start_srv)
        assert not res.success and 'recorder is not ready' in res.message
        p.command.publish(String(data=EpisodeCommand(op='start', seed=7).to_json()))
        recorder.publish(String(data=json.dumps({'ready': False, 'unmatched': {T.POLICY_TWIST: 'no publisher'}})))
        time.sleep(2.0)
        assert p.event('start') is None                          # the command waits
        recorder.publish(String(data=json.dumps({'ready': True, 'unmatched': {}})))
        assert wait_for(lambda: p.event('start') is not None, 10.0), 'the waiting start did not run'
        assert p.event('start').seed == 7
        code = stop(proc)
    finally:
        if code is None:
            code = stop(proc)
        p.close()
        log.close()
    assert code == 0, (tmp_path / 'wait.log').read_text()[-3000:]
