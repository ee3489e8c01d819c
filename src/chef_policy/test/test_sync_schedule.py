"""Approximate-time sync under jitter and reordering; SAC-X intention schedules."""

import numpy as np
import pytest

from chef_contract.spec import EPISODE_STEPS, INTENTIONS
from chef_policy.schedule import IntentionSchedule, ScheduleError, intention_index
from chef_policy.sync import ApproximateTimeSync

MS = 1_000_000
PERIOD = 50 * MS
TOPICS = ('cam_left', 'cam_right', 'joints', 'wrench', 'pose')


def jittered_stream(rng, ticks, jitter_ms, drop=()):
    """(arrival_time, topic, stamp, payload) for each tick/topic; payload names the true tick."""
    events = []
    for k in range(ticks):
        for t in TOPICS:
            if (k, t) in drop:
                continue
            stamp = k * PERIOD + int(rng.uniform(-jitter_ms, jitter_ms) * MS)
            arrival = stamp + int(rng.uniform(0, 30) * MS)        # transport delay reorders topics
            events.append((arrival, t, stamp, (t, k)))
    events.sort()
    return events


def test_sync_pairs_messages_of_the_same_tick_under_jitter():
    rng = np.random.default_rng(0)
    dropped = {(k, 'wrench') for k in range(5, 200, 17)} | {(k, 'cam_left') for k in range(9, 200, 23)}
    sync = ApproximateTimeSync(TOPICS, slop_ns=20 * MS, queue_size=5)
    last = None
    got = []
    for arrival, topic, stamp, payload in jittered_stream(rng, 200, jitter_ms=8, drop=dropped):
        sync.add(topic, stamp, payload)
        res = sync.latest(newer_than_ns=last)
        if res is not None:
            last, msgs = res
            ticks = {m[1] for m in msgs.values()}
            assert len(ticks) == 1, msgs                  # never pairs across ticks
            assert set(msgs) == set(TOPICS)
            got.append(ticks.pop())
    assert got == sorted(set(got))                         # each tick at most once, in order
    missing = {k for k, _ in dropped}
    assert not set(got) & missing                          # incomplete ticks are never emitted
    assert len(got) >= 200 - len(missing) - 5              # nearly every complete tick is found


def test_slop_zero_needs_identical_stamps_and_latest_skips_old_sets():
    sync = ApproximateTimeSync(('a', 'b'), slop_ns=0)
    sync.add('a', 100, 'a100')
    sync.add('b', 101, 'b101')
    assert sync.latest() is None
    sync.add('b', 100, 'b100')
    assert sync.latest() == (100, {'a': 'a100', 'b': 'b100'})
    assert sync.latest(newer_than_ns=100) is None
    sync.add('b', 200, 'b200')
    sync.add('a', 200, 'a200')
    assert sync.latest(newer_than_ns=100)[0] == 200
    sync.add('a', 200, 'a200bis')                          # a duplicate stamp replaces
    assert sync.latest()[1]['a'] == 'a200bis'
    sync.clear()
    assert sync.latest() is None


def test_sync_queue_is_bounded_and_out_of_order_inserts_sort():
    sync = ApproximateTimeSync(('a',), slop_ns=0, queue_size=3)
    for s in (5, 1, 4, 2, 3):
        sync.add('a', s, s)
    assert sync._stamps['a'] == [3, 4, 5]
    with pytest.raises(ValueError):
        ApproximateTimeSync(('a', 'a'), 0)


def test_schedule_switches_every_n_steps_reproducibly():
    s = IntentionSchedule(switch_every=100)
    s.reset(seed=7)
    first = [s.intention(t) for t in range(EPISODE_STEPS)]
    assert all(first[i] == first[(i // 100) * 100] for i in range(EPISODE_STEPS))
    s.reset(seed=7)
    assert [s.intention(t) for t in range(EPISODE_STEPS)] == first
    draws = set()
    for seed in range(50):
        s.reset(seed)
        draws.update(s.segments)
    assert draws == set(range(len(INTENTIONS)))            # uniform over all intentions (SAC-U)
    assert s.intention(10 * EPISODE_STEPS) in range(len(INTENTIONS))


def test_schedule_from_event_tags():
    s = IntentionSchedule(switch_every=100, candidates=('lift', 'stack'))
    s.reset(1)
    assert set(s.segments) <= {INTENTIONS.index('lift'), INTENTIONS.index('stack')}
    s.reset(1, {'intention': 'staged'})
    assert {s.intention(t) for t in range(400)} == {INTENTIONS.index('staged')}
    s.reset(1, {'intention_schedule': ['reach_grasp', 1, 'hover'], 'switch_every': 10})
    assert [s.intention(t) for t in (0, 9, 10, 20, 35, 399)] == [0, 0, 1, 2, 2, 2]
    with pytest.raises(ScheduleError):
        s.reset(1, {'intention': 'fly'})
    with pytest.raises(ScheduleError):
        s.reset(1, {'switch_every': 0})
    assert intention_index('3') == 3
    fixed = IntentionSchedule(fixed='stack')
    fixed.reset(5)
    assert fixed.intention(0) == INTENTIONS.index('stack')
