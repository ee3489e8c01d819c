"""Episode boundaries in the recorder core: reordering, reset storms, timeouts, replays, timing stats.

The messages are the exact CDR bytes rclpy would put on the wire (serialize_message); they are fed in
adversarial orders that DDS allows across topics (no cross-topic ordering)."""

import random

import numpy as np

from chef_contract import topics as T
from chef_recorder.bagio import header_stamp_ns
from chef_recorder.synthetic import PERIOD_NS
from conftest import Stream, _stamped, bag_meta, feed, full, ticks_in_bag

T0 = 1_000 * 10**9


def test_episodes_in_order_become_one_bag_each(make_recorder):
    rec = make_recorder()
    s = Stream()
    s.cell.policy_info('pol-7', 'ab' * 32)
    t = T0
    for e in range(3):
        t = s.episode(e, 6, t)
    feed(rec, s.take())
    assert rec.open_episodes == []
    assert [p.name for p in rec.published] == ['ep000', 'ep001', 'ep002']
    for e, path in enumerate(rec.published):
        assert ticks_in_bag(path) == [(e, k) for k in range(7)]
        m = bag_meta(path)
        assert m['status'] == 'end' and m['complete'] and m['steps'] == 6 and m['steps_recorded'] == 6
        assert m['policy_id'] == 'pol-7' and m['checkpoint_sha256'] == 'ab' * 32
        assert m['stage'] == 'collect' and m['iteration'] == 0 and m['config_hash'] == 'c0ffee'
        assert m['incomplete_ticks'] == 0 and m['dropped_messages'] == 0 and m['rate_ok']
        assert m['intention_schedule'] == [[0, 'reach_grasp'], [5, 'lift']]
        assert m['success'] == bool(e % 2) and m['clock'] == 'sim'


def test_last_tick_after_end_event_and_first_tick_before_start_event(make_recorder):
    rec = make_recorder()
    s = Stream()
    s.episode(0, 5, T0)
    items = s.take()
    last = T0 + 5 * PERIOD_NS
    events = [it for it in items if it[0] == T.EPISODE_EVENTS]
    start, end = events
    body = [it for it in items if it[0] != T.EPISODE_EVENTS]
    last_tick = [it for it in body if _stamped(it[1]) and header_stamp_ns(it[2]) == last]
    first_tick = body[:8]                               # some tick-0 messages overtake the start event
    middle = [it for it in body if it not in last_tick and it not in first_tick]
    feed(rec, first_tick + [start] + middle + [end])
    assert rec.open_episodes == ['ep000']               # waits for the last tick
    rec.fake_clock.t += 0.5
    feed(rec, last_tick[:-1])
    rec.poll()
    assert rec.open_episodes == ['ep000']
    feed(rec, last_tick[-1:])                           # last tick complete -> closes before timeout
    assert rec.open_episodes == [] and len(rec.published) == 1
    assert ticks_in_bag(rec.published[0]) == [(0, k) for k in range(6)]
    assert bag_meta(rec.published[0])['incomplete_ticks'] == 0


def test_reset_storm_keeps_every_message_in_its_own_episode(make_recorder):
    """Starts without end, aborts, one-step episodes, cross-topic shuffling: no message lands in a
    foreign episode and none is lost."""
    rng = random.Random(4)
    rec = make_recorder()
    s = Stream(cameras=('basket_front_left',))
    t = T0
    plan = []                      # (episode, steps, how it ends)
    for e in range(24):
        steps = rng.choice([1, 1, 2, 3, 7])
        how = rng.choice(['end', 'end', 'abort', None])
        plan.append((e, steps, how))
        t = s.episode(e, steps, t, end=how or '')
    items = s.take()
    # shuffle within windows of 6 messages, but keep the events topic in order (one writer)
    shuffled = []
    for i in range(0, len(items), 6):
        w = items[i:i + 6]
        rng.shuffle(w)
        shuffled += w
    events = iter([it for it in items if it[0] == T.EPISODE_EVENTS])
    shuffled = [next(events) if it[0] == T.EPISODE_EVENTS else it for it in shuffled]
    feed(rec, shuffled)
    rec.fake_clock.t += 10.0
    rec.poll()
    rec.shutdown()
    by_id = {p.name: p for p in rec.published}
    assert sorted(by_id) == [f'ep{e:03d}' for e, _, _ in plan]
    for e, steps, how in plan:
        path = by_id[f'ep{e:03d}']
        assert ticks_in_bag(path) == [(e, k) for k in range(steps + 1)], (e, how)
        m = bag_meta(path)
        expected = {'end': 'end', 'abort': 'abort'}.get(how) or (
            'shutdown' if e == len(plan) - 1 else 'superseded')
        assert m['status'] == expected, (e, how)
        assert m['complete'] == (how == 'end')
    assert rec.counters['late'] == 0 and rec.counters['unassigned'] == 0, dict(rec.counters)


def test_incomplete_last_tick_closes_after_timeout_and_late_messages_are_counted(make_recorder):
    rec = make_recorder(close_timeout_s=2.0)
    s = Stream()
    t1 = s.episode(0, 4, T0)
    items = s.take()
    cam = full(T.image_topic('basket_front_left'))
    last = T0 + 4 * PERIOD_NS
    lost = [it for it in items if full(it[0]) == cam and header_stamp_ns(it[2]) == last]
    feed(rec, [it for it in items if it not in lost])
    assert rec.open_episodes == ['ep000']
    rec.fake_clock.t += 2.5
    rec.poll()
    assert rec.open_episodes == []
    m = bag_meta(rec.published[0])
    assert m['incomplete_ticks'] == 1 and m['status'] == 'end'
    s.episode(1, 3, t1)
    feed(rec, lost + s.take())                  # the lost image arrives after the close: late
    rec.fake_clock.t += 5.0
    rec.poll()
    assert rec.counters['late'] == 1
    assert ticks_in_bag(rec.published[1]) == [(1, k) for k in range(4)]


def test_replayed_events_do_not_record_an_episode_twice(make_recorder, tmp_path):
    s = Stream()
    t = s.episode(0, 3, T0)
    first = s.take()
    rec = make_recorder()
    feed(rec, first)
    assert len(rec.published) == 1
    # a restarted recorder gets the transient-local history (start, end of ep000) then ep001 live
    rec2 = make_recorder()
    history = [it for it in first if it[0] == T.EPISODE_EVENTS]
    s.episode(1, 3, t)
    feed(rec2, history + s.take())
    assert [p.name for p in rec2.published] == ['ep001']
    assert rec2.counters['already_recorded'] == 1


def test_drops_and_missed_periods_are_counted(make_recorder):
    rec = make_recorder(max_missed_ticks=0)
    s = Stream()
    s.cell.event('start', 'slow', 0, T0)
    stamps = [T0 + k * PERIOD_NS for k in range(5)] + [T0 + 7 * PERIOD_NS, T0 + 8 * PERIOD_NS]
    for k, st in enumerate(stamps):
        s.cell.observation(0, k, st)
        if k < len(stamps) - 1:
            s.cell.command(0, k, st)
    s.cell.event('end', 'slow', 0, stamps[-1], steps=8)
    items = s.take()
    wrench = full(T.WRENCH)
    r = rec
    for i, (name, msgtype, raw) in enumerate(items):
        dropped = 2 if full(name) == wrench and header_stamp_ns(raw) == stamps[2] else 0
        r.receive(full(name), msgtype, raw, 1, _stamped(msgtype), dropped)
    m = bag_meta(rec.published[0])
    assert m['missed_period_ticks'] == 1 and not m['rate_ok']
    assert abs(m['max_tick_interval_s'] - 0.15) < 1e-9
    assert m['dropped_messages'] == 2 and m['dropped_by_topic'] == {wrench: 2}
    assert m['missing_ticks'] == 2 and not m['complete']      # the cell reported 8 steps, 6 recorded
    assert m['steps_recorded'] == 6


def test_unstamped_and_latched_messages_follow_the_running_episode(make_recorder):
    rec = make_recorder()
    s = Stream(cameras=())
    t = s.episode(0, 2, T0)
    s.cell.policy_info('second', 'cd' * 32)          # hot reload between episodes
    s.episode(1, 2, t)
    feed(rec, s.take())
    a, b = (bag_meta(p) for p in rec.published)
    assert a['policy_id'] == 'synthetic' or a['policy_id'] == ''
    assert b['policy_id'] == 'second'
    grip = full(T.POLICY_GRIPPER)
    assert a['topics'][grip] == 2 and b['topics'][grip] == 2
    assert np.isclose(sum(a['returns'].values()), sum(a['returns_recorded'].values()))


def test_an_episode_whose_observations_never_arrived_is_kept_but_not_complete(make_recorder):
    """Events and commands but no observation at all (the recorder's readers matched too late):
    the bag is kept (nothing is thrown away) but it is not complete and every tick is incomplete."""
    rec = make_recorder()
    s = Stream()
    s.episode(0, 5, T0)
    feed(rec, [it for it in s.take() if not T.topic(it[0]).per_tick])
    rec.fake_clock.t += 10.0
    rec.poll()
    assert rec.open_episodes == [] and len(rec.published) == 1
    m = bag_meta(rec.published[0])
    assert m['status'] == 'end' and m['steps'] == 5
    assert not m['complete'] and m['incomplete_ticks'] == 6
