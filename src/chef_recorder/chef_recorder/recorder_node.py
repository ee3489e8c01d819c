"""`recorder` node: records one cell's contract topics into one crash-safe rosbag2 (MCAP) bag per episode.

One node per cell namespace (`/cell0/recorder`, ...). Subscriptions are raw (CDR bytes go to the bag
untouched); the header stamp is read from the bytes, the receive stamp from the middleware's message
info, and lost messages from gaps in each publisher's sequence numbers. All episode logic lives in
the ROS-free `chef_recorder.recording.EpisodeRecorder`; this module is plumbing.

Works under sim time and wall time alike: nothing depends on the node clock; the close/stall timeouts
run on a steady-clock timer (a lockstep sim may stop its clock between episodes).

Readiness: the latched `recorder/status` says `ready` once every recorded topic is matched to every
publisher the graph shows, and each topic of `require_publishers` that it records has at least one.
A lockstep sim cell (`wait_for_recorder`) starts no episode before that, so the first ticks of the
first episode (policy commands included) are not lost to DDS matching.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.params import declare_params
from chef_contract.payloads import RecorderStatus
from chef_contract.ros import create_contract_publisher, create_contract_subscription, msg_class, spin_node
from chef_contract.spec import CAMERA_NAMES, CONTROL_PERIOD_S
from chef_recorder.bagio import warm_up
from chef_recorder.recording import EpisodeRecorder, RecorderSettings, roles_from_names


# Topics without which an episode's data is not worth starting: the tick reference, the boundaries and
# the behaviour and executed commands (their first samples are lost to a reader that matches late).
READY_TOPICS = (T.JOINT_STATES, T.EPISODE_EVENTS, T.POLICY_TWIST, T.POLICY_GRIPPER, T.TWIST_CMD, T.GRIPPER_CMD)
READY_RECHECK_S = 1.0        # wall s between graph checks once ready (10 Hz until then)


@dataclass
class Params:
    data_dir: str = field_('data', help='data directory: episodes/<cell>/<id>/ bags and catalog.sqlite')
    cell: str = field_('', help='cell id used in paths and metadata; empty = the node namespace (cell0)')
    topics: List[str] = field_(default_factory=lambda: ['*'], help=(
        "contract topic names to record; '*' = every contract topic except /clock, real-cell "
        "plumbing and camera topics (those follow `cameras`); '/clock' may be listed explicitly"))
    cameras: List[str] = field_(default_factory=lambda: list(CAMERA_NAMES), help=(
        "cameras whose image (and camera_info) to record; ['none'] = no camera"))
    images: bool = field_(True, help='record the `cameras` (false: none, whatever `cameras` lists; the sim '
                          "graph's images:=false, whose bridge renders no camera)")
    camera_info: bool = field_(True, help='also record camera/<name>/camera_info')
    close_timeout_s: float = field_(2.0, help='wall time after an end event before the bag is closed '
                                    'even if the last tick is incomplete', min=0.05, max=600.0)
    stall_timeout_s: float = field_(60.0, help='wall time without any message before an episode '
                                    'without end event is closed as stalled', min=1.0)
    pending_timeout_s: float = field_(2.0, help='wall time a message may wait for its start event',
                                      min=0.05, max=60.0)
    tick_tolerance: float = field_(0.5, help='a tick interval longer than (1 + this) x control period '
                                   'counts as a missed period', min=0.0, max=100.0)
    max_missed_ticks: int = field_(0, help='episodes with more missed periods get rate_ok = false', min=0)
    reliable: bool = field_(False, help='subscribe RELIABLE: lossless from publishers that offer it (sim cells, '
                                    'whose sensor writers keep 100 samples); a real best-effort driver '
                                    'would not match, so real cells keep False')
    queue_depth: int = field_(100, help='reader-side history per topic: messages the recorder can '
                              'buffer while its executor is busy (contract QoS otherwise)', min=1, max=10000)
    sync_s: float = field_(0.5, help='wall s between flushes of an open bag as complete MCAP chunks (and at '
                           'its end event): at most this much is lost to a kill -9', min=0.05, max=60.0)
    fsync: bool = field_(True, help='fsync each bag before publishing it (power-loss safety)')
    require_publishers: List[str] = field_(default_factory=lambda: list(READY_TOPICS), help=(
        'recorder/status is ready only when each of these that is recorded has a matched publisher '
        '(every other recorded topic: every publisher the graph shows is matched); [] = none'))
    update_catalog: bool = field_(True, help='add each published episode to <data_dir>/catalog.sqlite')
    cameras_file: str = field_('', help="a real cell's camera calibration (config/real/cameras.yaml): its "
                               "calibrated camera poses are the bags' tf_static; '' = the benchmark's poses")


NODE_PARAMS = {'recorder': Params}


def selected_topics(p: Params) -> List[str]:
    """Contract topic names the recorder subscribes to (raises KeyError on unknown names)."""
    names: List[str] = []
    camera_topics = {T.image_topic(c) for c in CAMERA_NAMES} | {T.camera_info_topic(c) for c in CAMERA_NAMES}
    for name in p.topics:
        if name == '*':
            names += [t.name for t in T.TOPICS if t.recorded and not t.real_only
                      and t.name not in camera_topics]
        elif name == T.TF_STATIC:
            raise KeyError(f'{name!r} is not subscribed: the recorder writes it into every bag itself')
        else:
            T.topic(name)
            names.append(name)
    cams = [] if list(p.cameras) == ['none'] or not p.images else list(p.cameras)
    unknown = [c for c in cams if c not in CAMERA_NAMES]
    if unknown:
        raise KeyError(f'unknown cameras {unknown}; known: {list(CAMERA_NAMES)}')
    for c in cams:
        names.append(T.image_topic(c))
        if p.camera_info:
            names.append(T.camera_info_topic(c))
    return list(dict.fromkeys(names))


def code_revision() -> str:
    """git revision of the checkout this module runs from ('' if not a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(['git', '-C', str(here), 'rev-parse', 'HEAD'], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not rev:
            return ''
        dirty = subprocess.run(['git', '-C', str(here), 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ('-dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return ''


class _Sub:
    __slots__ = ('name', 'full', 'msgtype', 'stamped', 'last_seq', 'handle')

    def __init__(self, name, full, msgtype, stamped):
        self.name, self.full, self.msgtype, self.stamped = name, full, msgtype, stamped
        self.last_seq: Dict[bytes, int] = {}
        self.handle = None


def unmatched_topics(subs: List[_Sub], graph_publishers, required) -> Dict[str, str]:
    """{contract name: why} of the subscriptions not ready: fewer matched publishers than the graph
    shows, or none matched on a `required` topic. `graph_publishers(full name)` counts the graph's."""
    out = {}
    for sub in subs:
        matched, seen = sub.handle.get_publisher_count(), graph_publishers(sub.full)
        if matched < seen:
            out[sub.name] = f'{matched} of {seen} publishers matched'
        elif matched == 0 and sub.name in required:
            out[sub.name] = 'no publisher'
    return out


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__('recorder', **kwargs)
        self.p = declare_params(self, Params)
        ns = self.get_namespace().strip('/')
        self.cell = self.p.cell or ns.replace('/', '_') or 'cell0'
        names = selected_topics(self.p)
        self._subs: List[_Sub] = []
        full = {n: self.resolve_topic_name(n) for n in names}
        roles = roles_from_names(full)
        settings = RecorderSettings(
            data_dir=self.p.data_dir, cell=self.cell, roles=roles, control_period_s=CONTROL_PERIOD_S,
            tick_tolerance=self.p.tick_tolerance, max_missed_ticks=self.p.max_missed_ticks,
            close_timeout_s=self.p.close_timeout_s, stall_timeout_s=self.p.stall_timeout_s,
            pending_timeout_s=self.p.pending_timeout_s, sync_s=self.p.sync_s, fsync=self.p.fsync,
            code_revision=code_revision(), node_name=self.get_fully_qualified_name())
        if self.p.cameras_file:
            from chef_contract.calibration import calibrated_static_transforms
            settings.static_transforms = calibrated_static_transforms(self.p.cameras_file)
        self.catalog = None
        if self.p.update_catalog:
            from chef_recorder.catalog import Catalog
            self.catalog = Catalog(self.p.data_dir)
        self.engine = EpisodeRecorder(settings, on_published=self._published)
        warm_up({T.topic(n).msg_type for n in names})
        for name in names:
            t = T.topic(name)
            cls = msg_class(t.msg_type)
            fields = list(cls.get_fields_and_field_types().items())
            stamped = bool(fields) and fields[0] == ('header', 'std_msgs/Header')
            sub = _Sub(name, full[name], t.msg_type, stamped)
            self._subs.append(sub)
            sub.handle = create_contract_subscription(self, name, self._callback(sub), raw=True,
                                                      depth=self.p.queue_depth, reliable=self.p.reliable)
        self._reported: Dict[str, int] = {}
        for name in self.p.require_publishers:
            T.topic(name)                               # unknown names are an error
        self._required = set(self.p.require_publishers)
        self._status_pub = create_contract_publisher(self, T.RECORDER_STATUS)
        self._status: Optional[RecorderStatus] = None
        self._status_checked = 0.0
        self._dropped_total = 0              # sequence gaps since start (recorder/status, chef status)
        self._published_total = 0
        self.create_timer(0.1, self._poll, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f'recording cell {self.cell!r} into {self.engine.layout.root}: {len(names)} topics '
            f'({sum(1 for n in names if "image_raw" in n)} cameras)')

    def _callback(self, sub: _Sub):
        def cb(raw, info):
            self._on_raw(sub, raw, info)
        return cb

    def _on_raw(self, sub: _Sub, raw: bytes, info) -> None:
        recv_ns = info.get('received_timestamp') or time.time_ns()
        dropped = 0
        seq = info.get('publication_sequence_number')
        gid = (info.get('publisher_gid') or {}).get('data')
        if seq is not None and gid is not None:
            gid = bytes(gid)
            last = sub.last_seq.get(gid)
            if last is not None and seq > last + 1:
                dropped = seq - last - 1
                self._dropped_total += dropped
            sub.last_seq[gid] = seq
        try:
            self.engine.receive(sub.full, sub.msgtype, raw, recv_ns, sub.stamped, dropped)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the recording
            self.get_logger().error(f'{sub.full}: {type(exc).__name__}: {exc}')

    def _poll(self) -> None:
        self.engine.poll()
        self._publish_status()
        for key in ('late', 'unassigned', 'write_errors', 'publish_errors', 'events_without_start'):
            n = self.engine.counters.get(key, 0)
            if n > self._reported.get(key, 0):
                self.get_logger().warning(f'{key}: {n} so far')
                self._reported[key] = n

    def _publish_status(self) -> None:
        """Publish recorder/status when readiness or the drop / episode counts change (graph checked
        at 10 Hz until ready, then every READY_RECHECK_S; counts at most once a second)."""
        now = time.monotonic()
        counts_changed = self._status is not None and (
            self._status.dropped_messages, self._status.episodes_published) != (
            self._dropped_total, self._published_total)
        if (self._status is not None and self._status.ready and now - self._status_checked < READY_RECHECK_S
                and not (counts_changed and now - self._status_checked >= 1.0)):
            return
        self._status_checked = now
        unmatched = unmatched_topics(self._subs, self.count_publishers, self._required)
        status = RecorderStatus(ready=not unmatched, unmatched=unmatched, pid=os.getpid(),
                                node=self.get_fully_qualified_name(), dropped_messages=self._dropped_total,
                                episodes_published=self._published_total)
        if status == self._status:
            return
        if status.ready and not (self._status is not None and self._status.ready):
            self.get_logger().info('ready: matched to a publisher on every topic it requires')
        elif not status.ready and self._status is not None and self._status.ready:
            self.get_logger().warning(f'not ready any more: {unmatched}')
        self._status = status
        self._status_pub.publish(msg_class('std_msgs/msg/String')(data=status.to_json()))

    def _published(self, meta, path) -> None:
        self._published_total += 1
        if self.catalog is not None:
            self.catalog.add_bag(path)
        flag = '' if meta['rate_ok'] else ' RATE MISSED'
        self.get_logger().info(
            f'episode {meta["episode_id"]} {meta["status"]}: {meta["steps_recorded"]} steps, '
            f'{meta["dropped_messages"]} dropped, {meta["incomplete_ticks"]} incomplete ticks{flag} -> {path}')

    def close(self) -> None:
        """Publish every open episode (spin_node calls this on SIGINT/SIGTERM)."""
        self.engine.shutdown()
        if self.catalog is not None:
            self.catalog.close()


def main(args=None):
    sys.exit(spin_node(RecorderNode, args=args))
