"""policy_node over real DDS: lockstep acting on every stamp, hot reload without a missed tick,
episode events and intention schedules, not-ready zero commands, hostile checkpoints, realtime timer."""

import json
import time

import numpy as np
import torch
from rclpy.parameter import Parameter
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.events import EpisodeEvent
from chef_contract.ros import stamp_to_ns
from chef_contract.spec import INTENTIONS, POLICY_CAMERAS
from chef_policy.checkpoint import save_checkpoint
from chef_policy.networks import MultiTaskActor, NetworkConfig
from chef_policy.policy_node import PolicyNode
from conftest import make_frame
from rosutil import Harness, ros_graph, wait_for, wait_matched


OUT = (T.POLICY_TWIST, T.POLICY_GRIPPER, T.POLICY_STEP, T.POLICY_INFO)
STATE_CFG = NetworkConfig(obs_mode='state', state_feature_dim=32, actor_torso=(32,))
PERIOD_NS = 50_000_000
T0 = 1_000 * 1_000_000_000


def constant_actor_checkpoint(path, vx_bias: float, cfg=STATE_CFG) -> str:
    """An actor whose every intention outputs mean vx = tanh(vx_bias) and 'close', whatever it sees."""
    torch.manual_seed(0)
    actor = MultiTaskActor(cfg)
    with torch.no_grad():
        actor.head.out.weight.zero_()
        actor.head.out.bias.zero_()
        actor.head.out.bias[:, 0] = vx_bias
        actor.head.out.bias[:, 9] = 5.0          # gripper logit of 'close'
    return save_checkpoint(path, {'actor': actor}, cfg)


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f'touch {self.marker}',))


def policy_factory(**params):
    overrides = [Parameter(k, value=v) for k, v in params.items()]

    def make(context):
        return PolicyNode(context=context, parameter_overrides=overrides)
    return make


def graph(**params):
    return ros_graph(policy_factory(**params), lambda context: Harness(OUT, context=context))


def topics_for(cameras=(), objects=True):
    return list(T.observation_topics(cameras, objects=objects))


class Feeder:
    def __init__(self, h, cameras=(), objects=True, seed=0, wait_objects=True):
        self.h, self.cameras, self.objects = h, tuple(cameras), objects
        self.rng = np.random.default_rng(seed)
        h.prepare(topics_for(cameras, objects) + [T.EPISODE_EVENTS, T.CHECKPOINT_ANNOUNCE])
        wait_matched(h, topics_for(cameras, objects and wait_objects))

    def tick(self, k, stamp=None):
        stamp = stamp if stamp is not None else T0 + k * PERIOD_NS
        self.h.publish_frame(make_frame(self.rng, 128, self.cameras), stamp, cameras=self.cameras,
                             include_objects=self.objects)
        return stamp

    def event(self, kind, stamp_ns, seed=0, tags=None):
        ev = EpisodeEvent(event=kind, episode_id=f'ep{stamp_ns}', cell='cell0', source='sim',
                          triplet='rgb_test_triplet1', seed=seed, stamp_ns=stamp_ns, tags=tags or {})
        self.h.pub(T.EPISODE_EVENTS, String(data=ev.to_json()))


def twists_by_stamp(h):
    return {stamp_to_ns(m.header.stamp): m for m in h.msgs(T.POLICY_TWIST)}


def steps(h):
    return [json.loads(m.data) for m in h.msgs(T.POLICY_STEP)]


def info(h):
    msgs = h.msgs(T.POLICY_INFO)
    return json.loads(msgs[-1].data) if msgs else None


def test_lockstep_hot_reload_swaps_weights_without_a_missed_tick(tmp_path):
    sha_a = constant_actor_checkpoint(tmp_path / 'a.pt', +2.0)
    sha_b = constant_actor_checkpoint(tmp_path / 'b.pt', -2.0)
    with graph(policy=str(tmp_path / 'a.pt'), timing='lockstep', deterministic=True) as (node, h):
        f = Feeder(h)
        assert wait_for(lambda: info(h) and info(h)['checkpoint_sha256'] == sha_a)
        assert info(h)['warmup_ms'] is not None
        assert info(h)['inputs_ready'] is False            # no observation yet: an episode must not start
        stamps = []
        for k in range(60):
            if k == 20:
                h.pub(T.CHECKPOINT_ANNOUNCE, String(data=json.dumps(
                    {'path': str(tmp_path / 'b.pt'), 'sha256': sha_b})))
            stamps.append(f.tick(k))
            time.sleep(0.05)
        assert wait_for(lambda: len(twists_by_stamp(h)) == len(stamps), 5.0), \
            f'{len(twists_by_stamp(h))} commands for {len(stamps)} ticks'
        tw = twists_by_stamp(h)
        assert sorted(tw) == stamps                       # one command per stamp, none missed
        assert node.counters['acted'] == len(stamps) and node.counters['swaps'] == 1
        signs = [np.sign(tw[s].twist.linear.x) for s in stamps]
        switch = signs.index(-1.0)
        assert 20 <= switch < 60 and set(signs[:switch]) == {1.0} and set(signs[switch:]) == {-1.0}
        assert abs(tw[stamps[0]].twist.linear.x - np.tanh(2.0) * 0.07) < 1e-6
        st = steps(h)
        assert [s['checkpoint_sha256'] for s in st][switch - 1:switch + 1] == [sha_a, sha_b]
        assert all(s['action'][4] == 1.0 for s in st)
        assert wait_for(lambda: info(h)['checkpoint_sha256'] == sha_b and info(h)['swaps'] == 1)
        assert info(h)['inputs_ready'] is True             # complete sets arrived, episode/events has a publisher
        assert all(m.data[0] == 0.8 for m in h.msgs(T.POLICY_GRIPPER))


def test_episode_events_gate_acting_and_set_the_intentions(tmp_path):
    constant_actor_checkpoint(tmp_path / 'a.pt', 1.0)
    with graph(policy=str(tmp_path / 'a.pt'), timing='lockstep', switch_every_steps=4) as (node, h):
        f = Feeder(h)
        f.event('end', T0 - PERIOD_NS)                 # between episodes: nothing is acted on
        time.sleep(0.3)
        for k in range(3):
            f.tick(k)
            time.sleep(0.03)
        time.sleep(0.2)
        assert h.msgs(T.POLICY_TWIST) == []
        f.event('start', T0 + 3 * PERIOD_NS, seed=5, tags={'intention': 'lift'})
        time.sleep(0.2)
        for k in range(3, 8):
            f.tick(k)
            time.sleep(0.03)
        assert wait_for(lambda: len(steps(h)) == 5)
        st = steps(h)
        assert [s['tick'] for s in st] == [0, 1, 2, 3, 4]
        assert {s['intention'] for s in st} == {INTENTIONS.index('lift')}
        assert st[0]['stamp_ns'] == T0 + 3 * PERIOD_NS
        f.event('start', T0 + 8 * PERIOD_NS, seed=6,
                tags={'intention_schedule': ['reach_grasp', 'stack'], 'switch_every': 2})
        time.sleep(0.2)
        for k in range(8, 13):
            f.tick(k)
            time.sleep(0.03)
        assert wait_for(lambda: len(steps(h)) == 10)
        assert [s['intention_name'] for s in steps(h)[5:]] == \
            ['reach_grasp', 'reach_grasp', 'stack', 'stack', 'stack']
        f.event('start', T0 + 13 * PERIOD_NS, seed=7)     # default SAC-U schedule, 4 steps each
        time.sleep(0.2)
        for k in range(13, 21):
            f.tick(k)
            time.sleep(0.03)
        assert wait_for(lambda: len(steps(h)) == 18)
        ints = [s['intention'] for s in steps(h)[10:]]
        assert ints[:4] == [ints[0]] * 4 and ints[4:] == [ints[4]] * 4


def test_waits_with_zero_commands_until_a_policy_arrives_and_refuses_strangers(tmp_path):
    sha = constant_actor_checkpoint(tmp_path / 'a.pt', 1.0)
    evil, marker = tmp_path / 'evil.pt', tmp_path / 'pwned'
    torch.save({'actor': Payload(marker)}, evil)        # unpickling would run `touch marker`
    with graph(policy='', timing='lockstep') as (node, h):
        f = Feeder(h, objects=True, wait_objects=False)
        assert wait_for(lambda: info(h) and info(h)['policy_id'] == 'none')
        for k in range(3):
            f.tick(k)
            time.sleep(0.03)
        assert wait_for(lambda: len(h.msgs(T.POLICY_TWIST)) == 3)
        assert all(m.twist.linear.x == 0.0 for m in h.msgs(T.POLICY_TWIST))
        assert {s['zero_reason'] for s in steps(h)} == {'not_ready'}
        assert h.msgs(T.POLICY_GRIPPER) == []
        h.pub(T.CHECKPOINT_ANNOUNCE, String(data=json.dumps({'path': str(evil), 'sha256': ''})))
        assert wait_for(lambda: 'refused' in info(h)['load_error'])
        assert not marker.exists()
        node.set_parameters([Parameter('policy', value=str(tmp_path / 'a.pt'))])
        assert wait_for(lambda: info(h)['checkpoint_sha256'] == sha)
        f.tick(3)
        assert wait_for(lambda: len(h.msgs(T.POLICY_TWIST)) == 4)
        assert h.msgs(T.POLICY_TWIST)[-1].twist.linear.x > 0


def test_pixel_policy_realtime_timer_acts_on_the_latest_synchronised_set(tmp_path):
    cfg = NetworkConfig(obs_mode='pixels', image_size=64, encoder_channels=(8, 16),
                        encoder_kernels=(8, 4), encoder_strides=(4, 2), image_feature_dim=16,
                        state_feature_dim=32, actor_torso=(32,))
    constant_actor_checkpoint(tmp_path / 'px.pt', 1.0, cfg)
    with graph(policy=str(tmp_path / 'px.pt'), timing='realtime') as (node, h):
        f = Feeder(h, cameras=POLICY_CAMERAS, objects=False)
        stamps = []
        t_next = time.monotonic()
        for k in range(40):
            stamps.append(f.tick(k, stamp=h.get_clock().now().nanoseconds))
            t_next += 0.05
            time.sleep(max(0.0, t_next - time.monotonic()))
        time.sleep(0.2)
        tw = twists_by_stamp(h)
        assert set(tw) <= set(stamps)                     # only real observation stamps
        assert len(tw) >= 0.8 * len(stamps), (len(tw), len(stamps))
        st = [s for s in steps(h) if s.get('tick') is not None]
        assert st and all(s['inference_ms'] < 50 for s in st)
        assert st[0]['intention'] in range(len(INTENTIONS))


def test_tick_timing_answers_every_observation_tick_once_even_when_ticks_arrive_in_bursts(tmp_path):
    """timing:=tick (the real cell's graph): a wall-clock cell whose ticks reach the policy in bursts
    (two sets 5 ms apart, then 95 ms of nothing - what a busy machine does to a 20 Hz driver) gets
    exactly one command per observation stamp; a 20 Hz timer would answer only the newer of each pair."""
    constant_actor_checkpoint(tmp_path / 'a.pt', 1.0)
    with graph(policy=str(tmp_path / 'a.pt'), timing='tick', deterministic=True) as (node, h):
        assert not node.get_parameter('use_sim_time').value
        f = Feeder(h)
        f.event('start', T0)
        stamps = []
        for k in range(0, 30, 2):
            stamps.append(f.tick(k))
            time.sleep(0.005)
            stamps.append(f.tick(k + 1))
            time.sleep(0.095)
        assert wait_for(lambda: len(h.msgs(T.POLICY_TWIST)) >= len(stamps), 5.0)
        time.sleep(0.2)
        got = [stamp_to_ns(m.header.stamp) for m in h.msgs(T.POLICY_TWIST)]
        assert sorted(got) == stamps                      # every tick once, no other stamp
        assert all(m.twist.linear.x > 0 for m in h.msgs(T.POLICY_TWIST))
        assert info(h)['timing'] == 'tick'


def test_swap_to_a_policy_with_new_inputs_waits_until_they_flow(tmp_path):
    """State policy A acts while pixel policy B (needs camera topics) is loaded; A keeps acting
    until B's complete input set arrives - no zero command, no missed tick at the handover."""
    sha_a = constant_actor_checkpoint(tmp_path / 'a.pt', +2.0)
    px = NetworkConfig(obs_mode='pixels', image_size=32, encoder_channels=(4,), encoder_kernels=(8,),
                       encoder_strides=(4,), image_feature_dim=8, state_feature_dim=16, actor_torso=(16,))
    sha_b = constant_actor_checkpoint(tmp_path / 'b.pt', -2.0, px)
    with graph(policy=str(tmp_path / 'a.pt'), timing='lockstep', deterministic=True) as (node, h):
        f = Feeder(h)
        assert wait_for(lambda: info(h) and info(h)['checkpoint_sha256'] == sha_a)
        h.pub(T.CHECKPOINT_ANNOUNCE, String(data=json.dumps({'path': str(tmp_path / 'b.pt'),
                                                              'sha256': sha_b})))
        assert wait_for(lambda: node._pending is not None or node.counters['swaps'] > 0)
        stamps = []
        # lockstep, as the sim bridge drives it: the next tick only after the command for this one
        for k in range(10):                        # no images yet: A must go on acting
            stamps.append(f.tick(k))
            assert wait_for(lambda: stamps[-1] in twists_by_stamp(h), 5.0), f'no command for tick {k}'
        assert node.counters['swaps'] == 0
        cams = Feeder(h, cameras=POLICY_CAMERAS, wait_objects=False)
        for k in range(10, 25):                    # now the cameras publish too
            stamps.append(cams.tick(k))
            assert wait_for(lambda: stamps[-1] in twists_by_stamp(h), 5.0), f'no command for tick {k}'
        assert len(twists_by_stamp(h)) == 25
        tw = twists_by_stamp(h)
        assert sorted(tw) == stamps
        signs = [np.sign(tw[s].twist.linear.x) for s in stamps]
        switch = signs.index(-1.0)
        assert switch >= 10 and set(signs[:switch]) == {1.0} and set(signs[switch:]) == {-1.0}
        assert all(s['tick'] is not None for s in steps(h))        # never a zero command
        assert node.counters['swaps'] == 1


def test_start_event_arriving_after_its_first_tick(tmp_path):
    """Events and observations travel on different topics: when tick 0 was already acted on (no
    episode seen yet), the late start event counts it instead of restarting the tick count."""
    constant_actor_checkpoint(tmp_path / 'a.pt', 1.0)
    with graph(policy=str(tmp_path / 'a.pt'), timing='lockstep', intention='lift') as (node, h):
        f = Feeder(h)
        f.tick(0)
        assert wait_for(lambda: len(steps(h)) == 1)
        f.event('start', T0, seed=1)
        assert wait_for(lambda: node._episode_active)
        for k in range(1, 4):
            f.tick(k)
            time.sleep(0.03)
        assert wait_for(lambda: len(steps(h)) == 4)
        assert [s['tick'] for s in steps(h)] == [0, 1, 2, 3]
        assert node.runner.stacker is not None and node.runner.tick == 4


def test_lockstep_re_sent_tick_gets_the_command_already_computed(tmp_path):
    """The sim re-sends tick k when its command got lost: the node publishes the command it already
    computed for t_k again (same stamp, same values: a stochastic policy would draw a new action),
    no second action or step record, and acts normally on the next tick."""
    constant_actor_checkpoint(tmp_path / 'a.pt', +0.5)
    with graph(policy=str(tmp_path / 'a.pt'), timing='lockstep', deterministic=False) as (node, h):
        f = Feeder(h)
        assert wait_for(lambda: info(h) and info(h)['policy_id'] != 'none')
        s0 = f.tick(0)
        assert wait_for(lambda: len(h.msgs(T.POLICY_TWIST)) == 1 and len(h.msgs(T.POLICY_GRIPPER)) == 1)
        f.tick(0)                                  # the same tick again (fresh random data, same stamp)
        assert wait_for(lambda: len(h.msgs(T.POLICY_TWIST)) == 2 and len(h.msgs(T.POLICY_GRIPPER)) == 2)
        first, again = h.msgs(T.POLICY_TWIST)
        assert stamp_to_ns(again.header.stamp) == s0 and again.twist == first.twist
        assert h.msgs(T.POLICY_GRIPPER)[0] == h.msgs(T.POLICY_GRIPPER)[1]
        assert node.counters['acted'] == 1 and node.counters['resent'] == 1 and len(steps(h)) == 1
        s1 = f.tick(1)
        assert wait_for(lambda: len(h.msgs(T.POLICY_TWIST)) == 3)
        assert stamp_to_ns(h.msgs(T.POLICY_TWIST)[-1].header.stamp) == s1
        assert node.counters['acted'] == 2 and len(steps(h)) == 2
