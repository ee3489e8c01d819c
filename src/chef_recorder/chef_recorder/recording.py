"""The recorder's core: split one cell's message stream into one bag per episode (ROS-free).

`EpisodeRecorder` receives every message as CDR bytes with its receive stamp (and header stamp, when
the message has one) plus the parsed episode events, and decides which episode's bag it belongs to.
The node (recorder_node.py) only feeds it; tests drive it directly too.

Boundaries come from the episode events, messages are assigned by header stamp, never by arrival:
  * a stamped message belongs to the open episode with the latest start stamp <= its stamp whose end
    stamp (once known) is >= its stamp; tick-0 messages that overtake their start event wait in a
    short pending buffer (`pending_timeout_s`) until the event arrives;
  * unstamped messages (the gripper command, latched state) go to the episode running when they are
    received;
  * an end/abort event fixes the episode's last stamp; the bag is closed once every per-tick topic has
    delivered a message stamped at or after it (the last tick is complete), or `close_timeout_s`
    (wall clock) after the event - messages of the last tick may arrive after the end event;
  * a start event while another episode has no end closes that one as `superseded` (reset storms);
    an episode without any message for `stall_timeout_s` is closed as `stalled`;
  * an episode id that is already on disk is never recorded again (the events topic is transient
    local: a restarted recorder receives old starts and ends);
  * a restarted recorder that receives the start of the episode its dead predecessor was recording
    takes that partial bag over: its readable messages go into the new bag first (the original is
    kept in .quarantine), so the episode is published once, with only the ticks nobody recorded
    missing (`merged_from` in the metadata).
Publishing (close, checksum, fsync, atomic rename, catalog) runs on a worker thread so the callbacks
keep receiving.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from chef_contract import topics as T
from chef_contract.events import EpisodeEvent, EventFormatError
from chef_contract.payloads import PolicyInfo, StepInfo
from chef_contract.spec import CONTROL_PERIOD_S, INTENTIONS, REWARD_TERMS
from chef_recorder import align, integrity
from chef_recorder.bagio import (
    BagError, EpisodeBagWriter, deserialize, header_stamp_ns, is_stamped, read_bag_metadata, tf_message_cdr,
)
from chef_recorder.layout import DataLayout, mcap_file
from chef_recorder.metadata import SCHEMA_VERSION, defaults, from_custom_data, to_custom_data

RECORDER_VERSION = '0.1.0'
TF_MSGTYPE = T.topic(T.TF_STATIC).msg_type
log = logging.getLogger('chef_recorder')


@dataclass
class TopicRoles:
    """Full (namespaced) topic names by the role they play in the alignment."""

    per_tick: Set[str] = field(default_factory=set)      # observations and rewards, one per tick
    command: str = ''                                     # policy/twist_cmd (the behaviour action)
    executed_command: str = ''                            # servo_node/delta_twist_cmds
    reference: str = ''                                   # joint_states: ticks when no command
    reward: str = ''                                      # reward/terms
    step_info: str = ''                                   # policy/step_info (JSON, stamp_ns inside)
    policy_info: str = ''                                 # policy/info (latched JSON)
    events: str = ''                                      # episode/events
    tf_static: str = ''                                   # tf_static: written by the recorder, not received


def roles_for_namespace(ns: str, names=None) -> TopicRoles:
    """TopicRoles of the contract topics `names` (default: all) in namespace `ns` ('/cell0')."""
    ns = '/' + ns.strip('/') if ns.strip('/') else ''
    names = [t.name for t in T.TOPICS] if names is None else list(names)
    return roles_from_names({n: n if n.startswith('/') else f'{ns}/{n}' for n in names})


def roles_from_names(full: Dict[str, str]) -> TopicRoles:
    """TopicRoles from {contract name: resolved topic name}. tf_static goes next to the events topic
    (the cell's namespace) unless `full` names it."""
    events = full.get(T.EPISODE_EVENTS, '')
    tf_static = full.get(T.TF_STATIC) or (events[:-len(T.EPISODE_EVENTS)] + T.TF_STATIC
                                          if events.endswith('/' + T.EPISODE_EVENTS) else '')
    return TopicRoles(
        per_tick={full[n] for n in full if T.topic(n).per_tick}, command=full.get(T.POLICY_TWIST, ''),
        executed_command=full.get(T.TWIST_CMD, ''), reference=full.get(T.JOINT_STATES, ''),
        reward=full.get(T.REWARD_TERMS, ''), step_info=full.get(T.POLICY_STEP, ''),
        policy_info=full.get(T.POLICY_INFO, ''), events=events, tf_static=tf_static)


@dataclass
class RecorderSettings:
    data_dir: str
    cell: str
    roles: TopicRoles
    control_period_s: float = CONTROL_PERIOD_S
    tick_tolerance: float = 0.5           # a tick interval > (1 + this) * period missed its period
    slop_s: float = CONTROL_PERIOD_S      # alignment window (t - slop, t]
    max_missed_ticks: int = 0
    close_timeout_s: float = 2.0          # wall s after the end event before closing regardless
    stall_timeout_s: float = 60.0         # wall s without a message before closing as stalled
    pending_timeout_s: float = 2.0        # wall s a message waits for its start event
    hold_s: float = 0.25                  # wall s a message waits before it is written (re-routing window)
    sync_s: float = 0.5                   # wall s between chunk flushes of an open bag (kill -9 loses less)
    fsync: bool = True
    code_revision: str = ''
    node_name: str = 'recorder'
    recovered_from: str = ''              # set by `chef data repair` when it replays salvaged messages
    static_transforms: Tuple[T.StaticTransform, ...] = field(default_factory=T.static_transforms)
    # the cell's frame tree written as tf_static (a real cell's: chef_contract.calibration)


def _policy_info(text: str) -> Optional[PolicyInfo]:
    """The policy/info payload, None if it is malformed (still recorded, not used for metadata)."""
    try:
        return PolicyInfo.from_json(text)
    except EventFormatError:
        return None


def _step_info(text: str) -> Optional[StepInfo]:
    """The policy/step_info payload, None if it is malformed (then recorded unstamped)."""
    try:
        return StepInfo.from_json(text)
    except EventFormatError:
        return None


class _Episode:
    def __init__(self, event: EpisodeEvent, writer: EpisodeBagWriter, now: float):
        self.event = event
        self.id = event.episode_id
        self.start_ns = int(event.stamp_ns)
        self.end_event: Optional[EpisodeEvent] = None
        self.end_ns: Optional[int] = None              # last stamp that belongs to it, once known
        self.close_as: Optional[tuple] = None          # (status, reason) once the end is known
        self.end_seen_at: Optional[float] = None
        self.writer = writer
        self.last_activity = now
        self.stamps: Dict[str, List[int]] = collections.defaultdict(list)
        self.recv_minus_stamp: List[int] = []
        self.rewards: List[tuple] = []                 # (stamp, {term: value})
        self.intentions: Dict[int, Any] = {}           # stamp -> intention
        self.dropped: Dict[str, int] = collections.Counter()
        self.policy_infos: List[Optional[PolicyInfo]] = []   # None: a malformed policy/info
        self.write_error = ''
        self.max_stamp = self.start_ns
        self.opened_unix_ns = time.time_ns()
        self.held: collections.deque = collections.deque()   # (t, topic, type, raw, recv, stamp, dropped)
        self.topics_seen: Set[str] = set()
        self.merged_from = ''                          # a dead recorder's partial bag taken over
        self.synced_at = now                           # when its writer last flushed a chunk

    def contains(self, stamp: int) -> bool:
        return self.start_ns <= stamp and (self.end_ns is None or stamp <= self.end_ns)


class EpisodeRecorder:
    """Splits a cell's messages into one crash-safe bag per episode; see the module docstring."""

    def __init__(self, settings: RecorderSettings,
                 on_published: Optional[Callable[[Dict[str, Any], Path], None]] = None,
                 clock: Callable[[], float] = time.monotonic, background: bool = True):
        self.s = settings
        self.layout = DataLayout(settings.data_dir)
        self.on_published = on_published
        self.clock = clock
        self._open: List[_Episode] = []
        self._pending: collections.deque = collections.deque()
        self._seen_ids: Set[str] = set()
        self._max_stamp: Dict[str, int] = {}
        self._expected_per_tick: Set[str] = set()
        self._last_closed_end_ns: Optional[int] = None
        self._policy_info: Optional[tuple] = None     # (PolicyInfo or None, topic, msgtype, raw, recv_ns)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, 'publish') if background else None
        self._futures: List[concurrent.futures.Future] = []
        self.published: List[Path] = []
        self.counters = collections.Counter()

    # ------------------------------------------------------------------ inputs
    def receive(self, topic: str, msgtype: str, raw: bytes, recv_ns: int, stamped: bool,
                dropped: int = 0) -> None:
        """Entry point for every raw message: dispatches by the topic's role (events, step info,
        policy info, anything else) and reads the header stamp of stamped types from the bytes."""
        r = self.s.roles
        if topic == r.tf_static:
            return                 # written by the recorder at each start; a replayed (salvaged) one is dropped
        if topic not in (r.events, r.step_info, r.policy_info):
            self.on_message(topic, msgtype, raw, recv_ns, header_stamp_ns(raw) if stamped else None, dropped)
            return
        try:
            text = deserialize(raw, msgtype).data
        except BagError as exc:
            log.warning('%s: undecodable message recorded as is (%s)', topic, exc)
            self.on_message(topic, msgtype, raw, recv_ns, None, dropped)
            return
        if topic == r.events:
            try:
                event = EpisodeEvent.from_json(text)
            except EventFormatError as exc:
                log.warning('malformed episode event ignored for boundaries: %s', exc)
                self.counters['malformed_events'] += 1
                self.on_message(topic, msgtype, raw, recv_ns, None, dropped)
                return
            self.on_event(event, topic, msgtype, raw, recv_ns)
            return
        if topic == r.step_info:
            info = _step_info(text)
            if info is None:
                self.counters['malformed_step_info'] += 1
            self.on_step_info(info, topic, msgtype, raw, recv_ns, dropped)
            return
        self.on_policy_info(_policy_info(text), topic, msgtype, raw, recv_ns)

    def on_message(self, topic: str, msgtype: str, raw: bytes, recv_ns: int,
                   stamp_ns: Optional[int] = None, dropped: int = 0) -> None:
        """Any recorded message. `stamp_ns` = header stamp (None if the type has no header);
        `dropped` = messages of this topic lost just before this one (sequence gap)."""
        now = self.clock()
        if stamp_ns is None:
            ep = self._open[-1] if self._open else None      # the latest started episode
            if ep is None:
                self._pending.append((now, topic, msgtype, raw, recv_ns, None, dropped))
                return
        else:
            prev = self._max_stamp.get(topic)
            if prev is None or stamp_ns > prev:
                self._max_stamp[topic] = stamp_ns
            ep = self._route(stamp_ns)
            if ep is None:        # before its start event, or after its episode closed: wait
                self._pending.append((now, topic, msgtype, raw, recv_ns, stamp_ns, dropped))
                self._check_closing(now)
                return
        self._store(ep, topic, msgtype, raw, recv_ns, stamp_ns, dropped, now)
        self._check_closing(now)

    def on_step_info(self, info: Optional[StepInfo], topic: str, msgtype: str, raw: bytes, recv_ns: int,
                     dropped: int = 0) -> None:
        """policy/step_info: stamped by its `stamp_ns`; carries the intention of the tick (a
        malformed one, `info` None, is recorded unstamped)."""
        stamp = info.stamp_ns if info is not None else None
        self.on_message(topic, msgtype, raw, recv_ns, stamp, dropped)
        if stamp is not None:
            ep = self._route(stamp)
            if ep is not None:
                ep.intentions[stamp] = info.intention
            else:
                self._pending.append((self.clock(), '__intention__', '', info.intention, 0, stamp, 0))

    def on_policy_info(self, info: Optional[PolicyInfo], topic: str, msgtype: str, raw: bytes,
                       recv_ns: int) -> None:
        self._policy_info = (info, topic, msgtype, raw, recv_ns)
        ep = self._current()
        if ep is not None:
            ep.policy_infos.append(info)
            self._write(ep, topic, msgtype, raw, recv_ns)

    def on_event(self, event: EpisodeEvent, topic: str, msgtype: str, raw: bytes, recv_ns: int) -> None:
        now = self.clock()
        if event.event == 'start':
            self._start(event, topic, msgtype, raw, recv_ns, now)
        else:
            ep = next((e for e in self._open if e.id == event.episode_id), None)
            if ep is None:
                if event.episode_id not in self._seen_ids:      # not history of a known episode
                    self.counters['events_without_start'] += 1
                return
            if ep.end_event == event:
                return                     # the same end twice: salvaged from a dead recorder's bag and replayed
            if ep.end_event is None:
                ep.end_event = event
                ep.end_ns = int(event.stamp_ns)
                ep.end_seen_at = now
                ep.close_as = (event.event, event.reason)
                # messages stamped after the end that were taken while the end was unknown: re-route
                keep, later = collections.deque(), []
                for item in ep.held:
                    (later if item[5] is not None and item[5] > ep.end_ns else keep).append(item)
                ep.held = keep
                for t, ltopic, ltype, lraw, lrecv, lstamp, ldropped in later:
                    target = self._route(lstamp)
                    if target is None:
                        self._pending.append((t, ltopic, ltype, lraw, lrecv, lstamp, ldropped))
                    else:
                        self._store(target, ltopic, ltype, lraw, lrecv, lstamp, ldropped, t)
                for st in [st for st in ep.intentions if st > ep.end_ns]:
                    self._pending.append((now, '__intention__', '', ep.intentions.pop(st), 0, st, 0))
            self._write(ep, topic, msgtype, raw, recv_ns)
            if ep.end_event is event:          # nothing can be taken back from an ended episode: to disk
                self._flush(ep)
                self._sync(ep, now)
            self._check_closing(now)

    def poll(self) -> None:
        """Timeouts: call periodically (the node does at 10 Hz, wall clock)."""
        now = self.clock()
        while self._pending and now - self._pending[0][0] > self.s.pending_timeout_s:
            item = self._pending.popleft()
            if item[1] == '__intention__':
                continue
            stamp = item[5]
            late = (stamp is not None and self._last_closed_end_ns is not None
                    and stamp <= self._last_closed_end_ns)
            self.counters['late' if late else 'unassigned'] += 1
            self.counters['dropped'] += item[6]
        for ep in self._open:
            self._flush(ep, now - self.s.hold_s)
            if now - ep.synced_at >= self.s.sync_s:
                self._sync(ep, now)
        for ep in list(self._open):
            if ep.end_ns is None and now - ep.last_activity > self.s.stall_timeout_s:
                self._close(ep, 'stalled', f'no message for {self.s.stall_timeout_s:.0f} s and no end event')
        self._check_closing(now)

    def shutdown(self, timeout_s: float = 60.0,
                 reason: str = 'recorder shut down before the episode ended') -> None:
        """Close every open episode (those without an end event as `shutdown`, for `reason`) and wait
        for publishing."""
        for ep in list(self._open):
            if ep.close_as is not None:
                self._close(ep, *ep.close_as)
            else:
                self._close(ep, 'shutdown', reason)
        self.flush(timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every closed episode is published."""
        for f in list(self._futures):
            f.result(timeout=timeout_s)
        self._futures = [f for f in self._futures if not f.done()]

    @property
    def open_episodes(self) -> List[str]:
        return [e.id for e in self._open]

    # ------------------------------------------------------------------ routing
    def _current(self) -> Optional[_Episode]:
        for ep in reversed(self._open):
            if ep.end_ns is None:
                return ep
        return None

    def _route(self, stamp: int) -> Optional[_Episode]:
        best = None
        for ep in self._open:
            if ep.contains(stamp) and (best is None or ep.start_ns >= best.start_ns):
                best = ep
        return best

    def _store(self, ep, topic, msgtype, raw, recv_ns, stamp_ns, dropped, now) -> None:
        """Assign a message to `ep`. It is written `hold_s` later, so that a start event that arrives
        after the first messages of its episode can still take them from an episode without end."""
        ep.last_activity = now
        ep.topics_seen.add(topic)
        if stamp_ns is not None and stamp_ns > ep.max_stamp:
            ep.max_stamp = stamp_ns
        ep.held.append((now, topic, msgtype, raw, recv_ns, stamp_ns, dropped))
        self._flush(ep, now - self.s.hold_s)

    def _flush(self, ep: _Episode, before: float = float('inf')) -> None:
        while ep.held and ep.held[0][0] <= before:
            _, topic, msgtype, raw, recv_ns, stamp_ns, dropped = ep.held.popleft()
            self._commit(ep, topic, msgtype, raw, recv_ns, stamp_ns, dropped)

    def _commit(self, ep, topic, msgtype, raw, recv_ns, stamp_ns, dropped) -> None:
        if dropped:
            ep.dropped[topic] += dropped
        if stamp_ns is not None:
            ep.stamps[topic].append(stamp_ns)
            if topic in self.s.roles.per_tick:
                ep.recv_minus_stamp.append(recv_ns - stamp_ns)
                if topic == self.s.roles.reward:
                    try:
                        m = deserialize(raw, msgtype)
                        ep.rewards.append((stamp_ns, dict(zip(m.name, (float(v) for v in m.position)))))
                    except Exception as exc:  # noqa: BLE001 - a bad reward message is recorded anyway
                        log.warning('undecodable %s message: %s', topic, exc)
        self._write(ep, topic, msgtype, raw, recv_ns)

    def _sync(self, ep: _Episode, now: float) -> None:
        ep.synced_at = now
        if ep.writer.closed:
            return
        try:
            ep.writer.sync()
        except OSError as exc:
            self._write_failed(ep, exc)

    def _write(self, ep: _Episode, topic, msgtype, raw, recv_ns) -> None:
        if ep.writer.closed:
            self.counters['dropped_after_error'] += 1
            return
        try:
            ep.writer.write(topic, msgtype, recv_ns, raw)
        except OSError as exc:
            self._write_failed(ep, exc)

    def _write_failed(self, ep: _Episode, exc: OSError) -> None:
        ep.write_error = f'{type(exc).__name__}: {exc}'
        log.error('episode %s: write failed (%s); partial bag kept for `chef data repair`', ep.id, ep.write_error)
        ep.writer.abandon(ep.write_error)
        self.counters['write_errors'] += 1

    # ------------------------------------------------------------------ episode lifecycle
    def _start(self, event, topic, msgtype, raw, recv_ns, now) -> None:
        if event.episode_id in self._seen_ids or any(e.id == event.episode_id for e in self._open):
            return
        final = self.layout.episode_dir(self.s.cell, event.episode_id)
        self._seen_ids.add(event.episode_id)
        if final.exists():
            self.counters['already_recorded'] += 1      # replayed history of the events topic
            return
        taken = self._take_over_partial(event.episode_id)
        if isinstance(taken, Path):                     # the dead recorder had closed it: now published
            self.counters['already_recorded'] += 1
            return
        moved, moved_intentions = [], {}
        for ep in list(self._open):
            if ep.end_ns is None:
                # messages of the new episode that overtook its start event went to this one: take back
                keep = collections.deque()
                for item in ep.held:
                    (moved if item[5] is not None and item[5] >= event.stamp_ns else keep).append(item)
                ep.held = keep
                for st in [st for st in ep.intentions if st >= event.stamp_ns]:
                    moved_intentions[st] = ep.intentions.pop(st)
                # it ends just before the new start; closes like an ended one (last tick or timeout)
                ep.end_ns = int(event.stamp_ns) - 1
                ep.end_seen_at = now
                ep.close_as = ('superseded', f'start of episode {event.episode_id} before its end event')
        start_info = {'event': event.to_json(), 'cell': self.s.cell}
        try:
            writer = EpisodeBagWriter(self.layout.partial_dir(self.s.cell, event.episode_id), final,
                                      start_info, fsync=self.s.fsync)
        except OSError as exc:
            log.error('episode %s: cannot open its bag (%s); not recorded', event.episode_id, exc)
            self.counters['open_errors'] += 1
            return
        ep = _Episode(event, writer, now)
        self._open.append(ep)
        self._write(ep, topic, msgtype, raw, recv_ns)
        if self._policy_info is not None:
            info, ptopic, pmsgtype, praw, precv = self._policy_info
            ep.policy_infos.append(info)
            self._write(ep, ptopic, pmsgtype, praw, precv)
        if self.s.roles.tf_static:      # the fixed frame tree, for viewers (docs/data.md, Open in Foxglove)
            self._write(ep, self.s.roles.tf_static, TF_MSGTYPE,
                        tf_message_cdr(self.s.static_transforms, int(event.stamp_ns)), recv_ns)
        ends = self._merge(ep, *taken, now=now) if taken is not None else []
        for item in moved:
            self._store(ep, *item[1:], now=item[0])
        ep.intentions.update(moved_intentions)
        if moved:
            self.counters['rerouted'] += len(moved)
        self._replay_pending(now)
        for end_event, raw, recv in ends[:1]:
            self.on_event(end_event, topic, msgtype, raw, recv)

    def _take_over_partial(self, episode_id: str):
        """The partial bag a dead recorder left for this episode (restart mid-episode): None if there is
        none (or a live recorder holds it); the published bag's path if it was closed but not renamed;
        else (salvaged messages, where the original now lies) after moving it to .quarantine."""
        partial = self.layout.partial_dir(self.s.cell, episode_id)
        if not partial.is_dir():
            return None
        try:
            state = integrity.partial_state(partial)
            if state == 'recording':
                return None
            if state == 'closed':
                path = integrity.repair_partial(self.layout, self.s.cell, partial)
                self._announce(from_custom_data(read_bag_metadata(path).get('custom_data')), path)
                return path
            kept = integrity.quarantine(self.layout, self.s.cell, partial, 'merged')
            return integrity.salvage(mcap_file(kept)), kept
        except (OSError, BagError) as exc:
            log.error('episode %s: could not take over the partial bag %s (%s); it stays for '
                      '`chef data repair`', episode_id, partial, exc)
            self.counters['takeover_errors'] += 1
            return None

    def _merge(self, ep: _Episode, found, kept: Path, now: float) -> list:
        """Put the salvaged messages of a dead recorder's bag of `ep` into `ep` (before any live one).
        Events are not copied: the start is `ep`'s own; its end or abort events are returned as
        (event, raw, receive stamp) for the caller to apply through `on_event` once `ep` is set up."""
        r = self.s.roles
        ends = []
        for topic, msgtype, log_ns, raw in found.messages:
            if topic == r.tf_static:
                continue                        # `ep` has its own
            if topic == r.events:
                try:
                    event = EpisodeEvent.from_json(deserialize(raw, msgtype).data)
                except (BagError, EventFormatError):
                    continue
                if event.episode_id == ep.id and event.event != 'start':
                    ends.append((event, raw, log_ns))
                continue
            if topic == r.policy_info:
                try:
                    info = _policy_info(deserialize(raw, msgtype).data)
                except BagError:
                    info = None
                if info is not None:
                    ep.policy_infos.append(info)
                self._write(ep, topic, msgtype, raw, log_ns)
                continue
            stamp = header_stamp_ns(raw) if is_stamped(msgtype) else None
            if topic == r.step_info:
                try:
                    info = _step_info(deserialize(raw, msgtype).data)
                except BagError:
                    info = None
                stamp = info.stamp_ns if info is not None else None
                if info is not None:
                    ep.intentions[stamp] = info.intention
            self._store(ep, topic, msgtype, raw, log_ns, stamp, 0, now)
        note = f'{self.layout.relative(kept)}: {len(found.messages)} messages'
        ep.merged_from = note + (f' ({found.note()})' if found.note() else '')
        self.counters['merged_messages'] += len(found.messages)
        log.warning('episode %s: took over the partial bag of a dead recorder (%s)', ep.id, ep.merged_from)
        return ends

    def _replay_pending(self, now) -> None:
        keep = collections.deque()
        current = self._current()
        for item in self._pending:
            t, topic, msgtype, raw, recv_ns, stamp, dropped = item
            if topic == '__intention__':
                ep = self._route(stamp)
                if ep is not None:
                    ep.intentions[stamp] = raw
                else:
                    keep.append(item)
                continue
            ep = self._route(stamp) if stamp is not None else current
            if ep is None:
                keep.append(item)
            else:
                self._store(ep, topic, msgtype, raw, recv_ns, stamp, dropped, now)
        self._pending = keep

    def _check_closing(self, now: float) -> None:
        for ep in list(self._open):
            if ep.end_ns is None:
                continue
            if self._last_tick_complete(ep) or now - ep.end_seen_at >= self.s.close_timeout_s:
                self._close(ep, *ep.close_as)

    def _last_tick_complete(self, ep: _Episode) -> bool:
        expected = self._expected_per_tick | {t for t in ep.topics_seen if t in self.s.roles.per_tick}
        if not expected:
            return False
        return all(self._max_stamp.get(t, -1) >= ep.end_ns for t in expected)

    def _close(self, ep: _Episode, status: str, reason: str) -> None:
        self._open.remove(ep)
        self._flush(ep)
        if ep.end_event is None:
            ep.max_stamp = max([ep.start_ns] + [max(v) for v in ep.stamps.values() if v])
        end = ep.end_ns if ep.end_ns is not None else ep.max_stamp
        self._last_closed_end_ns = max(end, self._last_closed_end_ns or end)
        per_tick_seen = {t for t in ep.stamps if t in self.s.roles.per_tick}
        if per_tick_seen:
            self._expected_per_tick = per_tick_seen
        if ep.writer.closed:
            self.counters['lost_to_errors'] += 1
            return
        if not ep.stamps:
            # only events: history replayed to a late joiner, or a cell that published nothing
            ep.writer.abandon('empty episode')
            shutil.rmtree(ep.writer.partial_dir, ignore_errors=True)
            self.counters['skipped_empty'] += 1
            log.warning('episode %s had no data messages; not published', ep.id)
            return
        meta = self.episode_metadata(ep, status, reason)
        if self._pool is None:
            self._publish(ep, meta)
        else:
            self._futures.append(self._pool.submit(self._publish, ep, meta))

    def _publish(self, ep: _Episode, meta: Dict[str, Any]) -> Path:
        try:
            path = ep.writer.publish(to_custom_data(meta))
        except Exception as exc:
            log.error('episode %s: publishing failed (%s); partial bag kept for `chef data repair`',
                      ep.id, exc)
            ep.writer.abandon(str(exc))
            self.counters['publish_errors'] += 1
            raise
        self.published.append(path)
        self.counters['published'] += 1
        self._announce(meta, path)
        return path

    def _announce(self, meta: Dict[str, Any], path: Path) -> None:
        if self.on_published is not None:
            try:
                self.on_published(meta, path)
            except Exception as exc:  # noqa: BLE001 - the bag is safe; the catalog can be rebuilt
                log.error('%s published but the catalog update failed: %s', path, exc)

    # ------------------------------------------------------------------ metadata
    def episode_metadata(self, ep: _Episode, status: str, reason: str) -> Dict[str, Any]:
        s, r = self.s, self.s.roles
        ev, end = ep.event, ep.end_event
        tags = dict(ev.tags or {})
        meta = defaults()
        commands = ep.stamps.get(r.command) or ep.stamps.get(r.executed_command) or []
        ticks = align.tick_stamps(commands, ep.stamps.get(r.reference, []), ep.start_ns,
                                  end.stamp_ns if end is not None else None)
        slop = int(s.slop_s * align.NS)
        incomplete = np.zeros(ticks.shape, bool)
        # joint_states (the tick reference) never seen leaves every tick incomplete: an episode
        # without observations is not complete
        per_tick = sorted({t for t in ep.stamps if t in r.per_tick} | ({r.reference} if r.reference else set()))
        for t in per_tick:
            st = np.sort(np.asarray(ep.stamps.get(t, []), np.int64))
            incomplete |= align.align_latest(st, ticks, slop) < 0
        missed, max_interval, rate = align.interval_stats(ticks, s.control_period_s, s.tick_tolerance)
        steps_recorded = max(int(ticks.size) - 1, 0)
        missing = max(0, int(end.steps) + 1 - int(ticks.size)) if end is not None and end.steps else 0
        returns_rec = self._recorded_returns(ep, ticks, slop)
        info = (ep.policy_infos[0] if ep.policy_infos else None) or PolicyInfo(policy_id='')
        changes = sum(1 for a, b in zip(ep.policy_infos, ep.policy_infos[1:]) if a != b)
        lat = np.asarray(ep.recv_minus_stamp, np.int64)
        clock = 'wall' if lat.size and abs(float(np.median(lat))) < 60 * align.NS else 'sim'
        meta.update(
            episode_id=ep.id, cell=s.cell, source=ev.source, triplet=ev.triplet, objects=ev.objects,
            seed=ev.seed, policy_id=str(info.policy_id or tags.get('policy_id') or ''),
            checkpoint_sha256=str(info.checkpoint_sha256 or tags.get('checkpoint_sha256') or ''),
            policy_changes=changes, stage=str(tags.get('stage', '')), iteration=tags.get('iteration'),
            intention_schedule=self._intention_runs(ep, ticks[:-1]),
            returns=dict(end.returns) if end is not None and end.returns else returns_rec,
            returns_recorded=returns_rec, success=end.success if end is not None else None,
            config_hash=str(tags.get('config_hash', '')),
            code_revision=str(tags.get('code_revision') or s.code_revision), tags=tags,
            status=status, abort_reason=reason if status != 'end' else '',
            complete=bool(status == 'end' and missing == 0 and not incomplete.all()),
            steps=int(end.steps) if end is not None and end.steps else steps_recorded,
            steps_recorded=steps_recorded, start_stamp_ns=ep.start_ns,
            end_stamp_ns=int(end.stamp_ns if end is not None else (ticks[-1] if ticks.size else ep.max_stamp)),
            clock=clock, recorded_unix_ns=ep.opened_unix_ns,
            topics=ep.writer.topic_counts(), message_count=ep.writer.message_count,
            bytes=ep.writer.bytes_written, dropped_messages=int(sum(ep.dropped.values())),
            dropped_by_topic=dict(ep.dropped), incomplete_ticks=int(incomplete.sum()),
            missing_ticks=missing, missed_period_ticks=missed, max_tick_interval_s=max_interval,
            achieved_rate_hz=rate, rate_ok=bool(missed <= s.max_missed_ticks),
            latency_ms_p50=float(np.percentile(lat, 50) / 1e6) if clock == 'wall' else None,
            latency_ms_p99=float(np.percentile(lat, 99) / 1e6) if clock == 'wall' else None,
            recorder={'node': s.node_name, 'host': socket.gethostname(), 'pid': os.getpid(),
                      'version': RECORDER_VERSION, 'schema': SCHEMA_VERSION},
            merged_from=ep.merged_from,
        )
        if s.recovered_from:
            meta.update(status='recovered', recovered_from=s.recovered_from,
                        abort_reason=f'recovered by chef data repair (stream ended as: {status}'
                                     f'{": " + reason if reason else ""})',
                        complete=bool(status == 'end' and missing == 0 and not incomplete.any()))
        return meta

    def _recorded_returns(self, ep: _Episode, ticks: np.ndarray, slop: int) -> Dict[str, float]:
        if not ep.rewards or ticks.size < 2:
            return {}
        rows = sorted(ep.rewards, key=lambda x: x[0])
        st = np.asarray([x[0] for x in rows], np.int64)
        idx = align.align_latest(st, ticks[1:], slop)
        out: Dict[str, float] = {}
        for i in idx[idx >= 0]:
            for k, v in rows[i][1].items():
                out[k] = out.get(k, 0.0) + v
        return {k: out[k] for k in REWARD_TERMS if k in out} | {k: v for k, v in out.items()
                                                               if k not in REWARD_TERMS}

    @staticmethod
    def _intention_runs(ep: _Episode, ticks: np.ndarray) -> List[list]:
        runs: List[list] = []
        for k, t in enumerate(ticks):
            it = ep.intentions.get(int(t))
            if it is None:
                continue
            if isinstance(it, int) and 0 <= it < len(INTENTIONS):
                it = INTENTIONS[it]
            if not runs or runs[-1][1] != it:
                runs.append([k, it])
        return runs

