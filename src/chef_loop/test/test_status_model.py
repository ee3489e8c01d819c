"""The ROS-free core of `chef status` (chef_loop.status_model, the domain labels of
chef_contract.domains, status_cmd's choice of domains and run): tick-rate estimate, the cell state
machine fed with real contract payloads, run progress from a run directory written by the real
RunState, and the text / JSON renderings. No graph, no rclpy; well under a second."""

import json
import os

import pytest

from chef_contract import domains
from chef_contract.events import EpisodeEvent, EventFormatError
from chef_contract.payloads import FleetProgress, RecorderStatus, SafetyStatus, StepInfo
from chef_loop.state import RunState
from chef_loop.status_cmd import add_arguments, choose_domains, main, run_from_reservations
from chef_loop.status_model import (
    CellTracker, FleetSnapshot, TickRate, format_text, run_progress,
)


def _event(kind, episode='ep1', steps=0, **tags):
    return EpisodeEvent(event=kind, episode_id=episode, cell='cell0', source='sim', triplet='rgb_test_triplet2',
                        seed=3, stamp_ns=1, steps=steps, tags=tags)


def test_tick_rate_over_a_sliding_window():
    rate = TickRate(window_s=2.0)
    assert rate.hz(0.0) == 0.0
    for k in range(41):                       # 20 Hz for 2 s
        rate.add(10.0 + k * 0.05)
    assert rate.hz(12.0) == pytest.approx(20.0)
    for k in range(1, 11):                    # then 5 Hz: the window forgets the 20 Hz ticks
        rate.add(12.0 + k * 0.2)
    assert rate.hz(14.0) == pytest.approx(5.0)
    assert rate.hz(20.0) == 0.0               # silent for longer than the window
    with pytest.raises(ValueError, match='window'):
        TickRate(0)


def test_cell_tracker_follows_episodes_ticks_recorder_and_safety():
    tr = CellTracker('cell0', domain=7, tick_window_s=1.0)
    assert tr.view(0.0).state == 'unknown'
    tr.on_event(_event('start', stage='collect', iteration=1, policy_id='scripted'), 100.0)
    for k in range(5):                        # ticks counted while no step info names the episode
        tr.on_tick(100.0 + 0.05 * k)
    v = tr.view(100.2)
    assert (v.state, v.episode_id, v.tick, v.stage, v.iteration, v.policy_id) == (
        'running', 'ep1', 4, 'collect', 1, 'scripted')
    assert v.tick_rate_hz == pytest.approx(20.0)
    tr.on_step(StepInfo(stamp_ns=5, episode_id='ep1', tick=17), 100.25)     # the policy's own tick wins
    tr.on_recorder(RecorderStatus(ready=True, dropped_messages=3, episodes_published=2), 100.3)
    v = tr.view(100.3)
    assert (v.tick, v.recorder_drops, v.recorder_episodes, v.recorder_ready) == (17, 3, 2, True)
    tr.on_safety('estop', 100.4)
    assert tr.view(100.4).state == 'estop'
    tr.on_safety('ok', 100.5)
    tr.on_event(_event('end', steps=400), 101.0)
    v = tr.view(103.0)
    assert (v.state, v.tick, v.episodes_ended, v.tick_rate_hz, v.last_heard_s) == ('idle', 400, 1, 0.0, 2.0)
    tr.on_event(_event('start', episode='ep2'), 104.0)
    tr.on_event(_event('abort', episode='ep2', steps=12), 104.5)
    assert (tr.view(105).state, tr.view(105).tick, tr.view(105).episodes_ended) == ('idle', 12, 1)
    tr.online = False
    assert tr.view(105).state == 'idle'         # still heard 0.5 s ago: the graph cache may lag
    assert tr.view(107).state == 'offline'


def test_run_progress_from_a_run_directory(tmp_path):
    run = tmp_path / 'runs' / 'r1'
    with pytest.raises(FileNotFoundError, match='state.json'):
        run_progress(run)
    state = RunState(run)
    state.mark_running(0, 'collect')
    state.mark_done(0, 'collect', {'episodes': 4, 'wall_s': 61.5})
    state.mark_running(0, 'explore')
    state.mark_running(0, 'explore')          # re-entered after a kill
    p = run_progress(run)
    assert [(s.iteration, s.stage, s.status) for s in p.stages] == [(0, 'collect', 'done'), (0, 'explore', 'running')]
    assert (p.current.stage, p.current.status, p.current.resumed) == ('explore', 'running', 1)
    assert p.stages[0].wall_s == 61.5 and p.data_dir == str(run / 'data') and p.store_episodes == 0
    (run / 'config.yaml').write_text(f'data_dir: {tmp_path / "store"}\n')
    assert run_progress(run).data_dir == str(tmp_path / 'store')
    state.mark_done(0, 'explore', {})
    assert run_progress(run).current.stage == 'explore'     # nothing running: the newest done stage


def test_snapshot_renders_as_text_and_json(tmp_path):
    tr = CellTracker('cell3', domain=150)
    tr.on_event(_event('start', episode='abcdef0123456789', stage='execute', iteration=0), 10.0)
    tr.on_tick(10.0)
    tr.on_tick(10.1)
    progress = FleetProgress(jobs=10, done=4, succeeded=1, failed=0, running={'cell3': 'rgb_test_triplet2'},
                             stage='execute', iteration=0, label='t0')
    snap = FleetSnapshot(cells=[tr.view(10.1)], domains=[150], fleet=[progress], notes=['a note'])
    text = format_text(snap)
    assert 'cell3' in text and 'running' in text and 'abcdef012345' in text and '10.0' in text
    assert 'iteration 0 execute (t0): 4/10 episodes done, 1 succeeded' in text and 'a note' in text
    back = json.loads(snap.to_json())
    assert back['cells'][0]['tick_rate_hz'] == pytest.approx(10.0) and back['fleet'][0]['jobs'] == 10
    view = back['view']                       # what the web page renders: the terminal's own strings
    assert view['rows'] == [row.split() for row in text.splitlines() if row.startswith('cell3')]
    assert view['lines'] == ['session: iteration 0 execute (t0): 4/10 episodes done, 1 succeeded, 0 failed, '
                             '1 running'] and view['columns'][0] == 'cell'
    assert 'no live cell found' in format_text(FleetSnapshot(cells=[], domains=[]))


def test_status_payloads_are_strict():
    p = FleetProgress(jobs=3, done=1, stage='collect', iteration=2)
    assert FleetProgress.from_json(p.to_json()) == p
    with pytest.raises(EventFormatError, match='jobs'):
        FleetProgress(jobs='3')
    with pytest.raises(EventFormatError, match='unknown keys'):
        FleetProgress.from_json('{"jobs": 1, "wanted": 2}')
    r = RecorderStatus(ready=True, dropped_messages=7)
    assert RecorderStatus.from_json(r.to_json()).dropped_messages == 7
    assert RecorderStatus.from_json('{"ready": false}').dropped_messages == 0     # older recorders
    with pytest.raises(EventFormatError, match='dropped_messages'):
        RecorderStatus(ready=True, dropped_messages=1.5)
    s = SafetyStatus(state='estop', estop=True, estop_reason='operator', counters={'zeroed': 2})
    assert SafetyStatus.from_json(s.to_json()) == s
    with pytest.raises(EventFormatError, match='state'):
        SafetyStatus(state='halted')


def test_domain_reservations_carry_the_owners_label(tmp_path, monkeypatch):
    monkeypatch.setattr(domains, '_LOCK_DIR', tmp_path)
    monkeypatch.setattr(domains, '_OWNER_LABEL', [''])
    monkeypatch.delenv(domains.OWNER_LABEL_ENV, raising=False)
    (tmp_path / '5.pid').write_text('999999999')           # a dead owner's lock: not live
    domains.set_owner_label('/runs/r1')
    assert os.environ[domains.OWNER_LABEL_ENV] == '/runs/r1'    # children (Ray workers) inherit it
    did = domains.reserve_domain_id((3, 3))
    try:
        live = domains.live_reservations()
        assert [(r.domain, r.pid, r.label) for r in live] == [(3, os.getpid(), '/runs/r1')]
        assert live[0].argv and live[0].reserved_unix > 0
    finally:
        domains.release_domain_id(did)
    assert domains.live_reservations() == [] and not (tmp_path / '3.json').exists()
    monkeypatch.setattr(domains, '_OWNER_LABEL', [''])     # a child process: the label from its environment
    did = domains.reserve_domain_id((4, 4))
    try:
        assert [(r.domain, r.label) for r in domains.live_reservations()] == [(4, '/runs/r1')]
    finally:
        domains.release_domain_id(did)


def test_status_chooses_domains_and_run(tmp_path):
    run = tmp_path / 'r1'
    RunState(run).save()
    res = [domains.DomainReservation(120, 1, str(run)), domains.DomainReservation(121, 2, ''),
           domains.DomainReservation(122, 3, str(run))]
    assert choose_domains([9, 9, 4], res, None) == [4, 9]
    assert choose_domains(None, res, run) == [120, 122]
    assert choose_domains(None, res, None) == [120, 121, 122]
    with pytest.raises(ValueError, match='0-232'):
        choose_domains([300], res, None)
    assert run_from_reservations(res) == run
    assert run_from_reservations(res + [domains.DomainReservation(123, 4, str(tmp_path))]) == run   # no state.json
    other = tmp_path / 'r2'
    RunState(other).save()
    assert run_from_reservations(res + [domains.DomainReservation(124, 5, str(other))]) is None


@pytest.mark.parametrize('argv, error', [
    (['--interval', '0'], '--interval 0.0: must be > 0'),
    (['--wait', '-1'], '--wait -1.0: must be >= 0'),
    (['--json'], '--json needs --once'),
    (['--port', '70000'], '--port 70000'),
    (['--domain', '300', '--once'], '--domain 300: ROS domain ids are 0-232'),
    (['--run', '/nonexistent/run', '--once'], 'no state.json'),
])
def test_status_command_refuses_bad_input_in_one_line(argv, error):
    """Before any DDS participant starts (this test runs without a ROS graph)."""
    import argparse
    p = argparse.ArgumentParser()
    add_arguments(p)
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        main(p.parse_args(argv))
