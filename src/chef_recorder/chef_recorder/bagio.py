"""rosbag2 (MCAP) bags: the crash-safe episode writer and a tolerant reader (ROS-free).

Writing goes through `rosbags` (a conformant rosbag2 v9 writer: metadata.yaml, MCAP with the `ros2`
profile, `ros2msg` schemas, a `rosbag2` metadata record), never hand-written MCAP. The payloads are
the CDR bytes exactly as they crossed DDS (raw subscriptions), so nothing is re-encoded.

Crash safety of `EpisodeBagWriter`:
  * the bag is written under `episodes/<cell>/.partial/<id>/`; `recording.lock` inside it is
    flock-held for as long as the writer lives, so a dead recorder's partial is recognisable (the
    kernel drops the lock on kill -9);
  * `sync()` ends the MCAP chunk being filled and hands it to the kernel: what a kill -9 leaves is
    readable up to there (rosbags otherwise keeps up to 1 MiB - a whole short episode - in memory);
    the recorder calls it every `sync_s` and at an episode's end event;
  * `publish()` closes the bag (index, summary, metadata.yaml), writes SHA256SUMS, fsyncs, and
    renames the directory to `episodes/<cell>/<id>/` in one atomic step, then fsyncs the parent.

What `ros2 bag play` needs is written too (docs/data.md, "Bags both ways"): each topic's offered QoS
(the contract publisher's profile, `offered_qos_profiles`; the one place here that imports rclpy,
lazily) in metadata.yaml and the MCAP channel metadata, the channel's `topic_type_hash`, and
`ros_distro: kilted`.

Reading: `iter_messages` reads the storage files listed in metadata.yaml directly, each through its
own plugin (rosbags matches metadata.yaml connections to MCAP channels by QoS and silently yields
nothing when they differ, as in bags from rosbag2 Foxy); types are resolved per topic
(`describe_type`: empty definitions, old-style names, service events) and a topic nothing can
describe is skipped with a SkippedTopicWarning, never the whole bag. `deserialize` tolerates the
trailing padding rmw adds to CDR buffers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import struct
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from chef_recorder.layout import CHECKSUMS, RECORDING_INFO, RECORDING_LOCK, mcap_file

ROSBAG_VERSION = 9
ROS_DISTRO = 'kilted'          # the distro of the typestore below: definitions and RIHS01 hashes
_TYPESTORE = None


class BagError(RuntimeError):
    """A bag that cannot be read or written; the message names the file and the reason."""


def typestore():
    """The rosbags typestore of ROS 2 Kilted (message definitions and RIHS01 hashes)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_typestore
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


def offered_qos_profiles(topic: str) -> list:
    """The QoS the contract's publishers of `topic` offer, as rosbags Qos ([] for a topic outside the
    contract). Recorded per topic so that `ros2 bag play` offers what CHEF's subscribers request
    (deadline on commands, transient local on events) instead of its default profile."""
    try:
        from chef_contract.ros import qos
        from chef_contract.topics import topic as contract_topic
        from chef_recorder.decode import contract_name
    except ImportError:                 # no rclpy here: rosbag2 play falls back to its default profile
        return []
    name = contract_name(topic) or ('/clock' if topic.endswith('/clock') else None)   # /cellN/clock
    if name is None:
        return []
    return [qos_to_rosbags(qos(contract_topic(name).qos, 'pub'))]


def parse_offered_qos(profiles) -> list:
    """A topic's `offered_qos_profiles` from metadata.yaml or MCAP channel metadata (a YAML string up
    to metadata v8, a list from v9) -> rosbags Qos."""
    from rosbags.rosbag2.metadata import parse_qos
    return parse_qos(profiles or [])


def qos_to_rosbags(profile):
    """rclpy QoSProfile -> rosbags Qos (same rmw enum values; durations as sec + nsec)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def t(duration) -> QosTime:
        ns = int(duration.nanoseconds)
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)
    return Qos(QosHistory(int(profile.history)), int(profile.depth), QosReliability(int(profile.reliability)),
               QosDurability(int(profile.durability)), t(profile.deadline), t(profile.lifespan),
               QosLiveliness(int(profile.liveliness)), t(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def warm_up(msgtypes: Iterable[str]) -> None:
    """Load the typestore and generate the code for `msgtypes` now (~0.5 s), not on the first message."""
    ts = typestore()
    for t in msgtypes:
        ts.get_msgdef(t)
        ts.generate_msgdef(t, ros_version=2)
        ts.hash_rihs01(t)
    String = ts.types['std_msgs/msg/String']
    deserialize(ts.serialize_cdr(String(data='{}'), 'std_msgs/msg/String'), 'std_msgs/msg/String')


class UnsupportedTypeError(BagError):
    """A topic whose message type neither the typestore nor the bag can describe (the topic is
    skipped, never the whole bag)."""


class SkippedTopicWarning(UserWarning):
    """A topic of a bag was skipped: its type cannot be described (the message names topic and type)."""


def _empty_fields():
    """The fields of a message without fields: rosidl's dummy byte, as in std_msgs/msg/Empty."""
    from rosbags.interfaces import Nodetype
    return [('structure_needs_at_least_one_member', (Nodetype.BASE, ('uint8', 0)))]


def canonical_type(msgtype: str) -> str:
    """The typestore's name of a bag's type: old-style 'pkg/Type' (rosbag2 before Foxy) -> 'pkg/msg/Type'."""
    parts = msgtype.split('/')
    return f'{parts[0]}/msg/{parts[1]}' if len(parts) == 2 and all(parts) else msgtype


def _rename_types(types: Dict[str, Any]) -> Dict[str, Any]:
    """Undo the '/msg/' that rosbags' msg parser inserts into service type names
    ('pkg/srv/msg/X_Request' -> 'pkg/srv/X_Request'), in the names and in every field that uses them."""
    from rosbags.interfaces import Nodetype

    def fix(name: str) -> str:
        return name.replace('/srv/msg/', '/srv/').replace('/action/msg/', '/action/')

    def node(n):
        kind, detail = n
        if kind == Nodetype.NAME:
            return (kind, fix(detail))
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):     # (element node, size)
            return (kind, (node(detail[0]), detail[1]))
        return n
    return {fix(k): (consts, [(f, node(d)) for f, d in fields]) for k, (consts, fields) in types.items()}


def _service_event_types(name: str, srv_text: str) -> Dict[str, Any]:
    """`pkg/srv/X_Event` from the .srv text ('request --- response') rosbag2 stores as its schema."""
    from rosbags.typesys import get_types_from_msg
    base = name[:-len('_Event')]
    req, sep, resp = srv_text.partition('\n---\n')
    if not sep:
        req, sep, resp = srv_text.partition('---\n') if srv_text.startswith('---\n') else (srv_text, '', '')
    if not sep:
        raise UnsupportedTypeError(f'{name}: service event schema without a request/response separator')
    types: Dict[str, Any] = {}
    for text, part in ((req, '_Request'), (resp, '_Response')):
        types.update(get_types_from_msg(text, base + part) if text.strip() else
                     {base.replace('/srv/', '/srv/msg/') + part: ([], _empty_fields())})
    types.update(get_types_from_msg(f'service_msgs/msg/ServiceEventInfo info\n{base}_Request[<=1] request\n'
                                    f'{base}_Response[<=1] response\n', name))
    return _rename_types(types)


def describe_type(msgtype: str, msgdef: Optional[str], fmt: str = 'ros2msg') -> str:
    """Make `msgtype` decodable and return its typestore name (see `canonical_type`).

    Known types come from the typestore; others are registered from the bag's schema: `fmt` is
    'ros2msg' or 'ros2idl' ('' or None: the bag has no definition). An empty ros2msg definition is a
    message without fields (test_msgs/msg/Empty), not a missing one; service-event topics
    (`pkg/srv/X_Event`, stored with the .srv text) are built from their request and response.
    Raises UnsupportedTypeError naming the type when it cannot be described.
    """
    ts = typestore()
    name = canonical_type(msgtype)
    if name in ts.fielddefs:
        return name
    msgdef = msgdef or ''
    try:
        if fmt not in ('ros2msg', 'ros2idl'):
            raise UnsupportedTypeError(f'unknown message type {msgtype!r} and no definition in the bag')
        if fmt == 'ros2idl':
            from rosbags.typesys import get_types_from_idl
            types = get_types_from_idl(msgdef)
        elif not msgdef.strip():
            types = {name: ([], _empty_fields())}
        elif '/srv/' in name and name.endswith('_Event') and '\nMSG: ' not in msgdef:
            types = _service_event_types(name, msgdef)
        else:
            from rosbags.typesys import get_types_from_msg
            # rosbag2 concatenates dependent definitions separated by '=' lines with 'MSG: pkg/Type'.
            parts = msgdef.split('\n' + '=' * 80 + '\n')
            types = dict(get_types_from_msg(parts[0], name))
            for part in parts[1:]:
                head, _, body = part.partition('\n')
                if head.startswith('MSG: '):
                    types.update(get_types_from_msg(body, canonical_type(head[5:].strip())))
            types = _rename_types(types)
        ts.register({k: v for k, v in types.items() if k not in ts.fielddefs})
        ts.get_msgdef(name)
    except UnsupportedTypeError:
        raise
    except Exception as exc:  # noqa: BLE001 - rosbags' parser errors have no common base
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''
        raise UnsupportedTypeError(f'message type {msgtype!r}: definition not usable '
                                   f'({type(exc).__name__}{": " + first if first else ""})') from None
    return name


def ensure_type(msgtype: str, msgdef: str = '', fmt: str = 'ros2msg') -> str:
    """`describe_type` (kept for callers that predate it)."""
    return describe_type(msgtype, msgdef, fmt)


def is_stamped(msgtype: str) -> bool:
    """True if the type's first field is a std_msgs/Header (its stamp can be read from the bytes)."""
    fields = typestore().fielddefs[msgtype][1]
    return bool(fields) and fields[0][0] == 'header' and fields[0][1][1] == 'std_msgs/msg/Header'


def header_stamp_ns(raw: bytes) -> int:
    """Header stamp (ns) of a CDR message whose first field is std_msgs/Header, without decoding."""
    if len(raw) < 12:
        raise BagError(f'CDR buffer of {len(raw)} bytes is too short for a header')
    fmt = '<iI' if raw[1] & 1 else '>iI'
    sec, nanosec = struct.unpack_from(fmt, raw, 4)
    return sec * 1_000_000_000 + nanosec


def tf_message_cdr(transforms, stamp_ns: int) -> bytes:
    """CDR bytes of a tf2_msgs/msg/TFMessage of `transforms` (chef_contract.topics.StaticTransform),
    every one stamped `stamp_ns`. Built with the typestore: rclpy has no tf2_msgs here."""
    ts = typestore()
    g, types = 'geometry_msgs/msg/', ts.types
    stamp = types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                                  nanosec=int(stamp_ns % 1_000_000_000))
    msg = types['tf2_msgs/msg/TFMessage'](transforms=[
        types[g + 'TransformStamped'](
            header=types['std_msgs/msg/Header'](stamp=stamp, frame_id=t.parent), child_frame_id=t.child,
            transform=types[g + 'Transform'](translation=types[g + 'Vector3'](*map(float, t.translation_m)),
                                             rotation=types[g + 'Quaternion'](*map(float, t.rotation_xyzw))))
        for t in transforms])
    return bytes(ts.serialize_cdr(msg, 'tf2_msgs/msg/TFMessage'))


def deserialize(raw, msgtype: str):
    """CDR bytes -> rosbags message object (same field names as rclpy messages)."""
    ts = typestore()
    raw = memoryview(raw)
    if len(raw) < 4 or bytes(raw[:2]) not in (b'\x00\x00', b'\x00\x01'):
        raise BagError(f'{msgtype}: invalid or unsupported CDR encapsulation')
    msgdef = ts.get_msgdef(msgtype)
    func = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
    try:
        msg, _ = func(raw[4:], 0, msgdef.cls, ts)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise BagError(f'could not decode a {msgtype} message: {exc}') from None
    return msg


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any, fsync: bool = False) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True, default=str)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def lock_is_held(lock_path: Path) -> bool:
    """True while some process holds the flock on `lock_path` (a live recorder)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
class EpisodeBagWriter:
    """One episode's bag, written under a temporary name and published atomically.

    `write()` takes CDR bytes with their receive stamp (ns, the bag's log time); the header stamps
    stay inside the messages. Connections are added on first use of a topic.
    """

    def __init__(self, partial_dir: Path, final_dir: Path, start_info: Dict[str, Any],
                 fsync: bool = True):
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.partial_dir = Path(partial_dir)
        self.final_dir = Path(final_dir)
        self.fsync = fsync
        self.bytes_written = 0
        self.message_count = 0
        self._closed = False
        self.partial_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.partial_dir.exists():
            # a dead recorder's partial of the same episode: keep it for `chef data repair`
            aside = self.partial_dir.with_name(f'{self.partial_dir.name}.stale-{time.time_ns()}')
            os.replace(self.partial_dir, aside)
        self._writer = Writer(self.partial_dir, version=ROSBAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        _as_rosbag2_records(self._writer.storage)
        self._lock_fd = os.open(self.partial_dir / RECORDING_LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        info = dict(start_info)
        info.update(pid=os.getpid(), host=socket.gethostname(), started_unix_ns=time.time_ns())
        write_json_atomic(self.partial_dir / RECORDING_INFO, info, fsync=fsync)
        self._connections: Dict[Tuple[str, str], Any] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, topic: str, msgtype: str, recv_ns: int, raw: bytes) -> None:
        key = (topic, msgtype)
        conn = self._connections.get(key)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore(),
                                               offered_qos_profiles=offered_qos_profiles(topic))
            self._connections[key] = conn
        self._writer.write(conn, int(recv_ns), raw)
        self.bytes_written += len(raw)
        self.message_count += 1

    def sync(self) -> None:
        """Write the messages so far as a complete MCAP chunk and flush it to the kernel (no fsync:
        this is for process death, `publish()` is for power loss). Uses rosbags' MCAP writer
        internals (rosbags 0.11); a no-op when they are not there."""
        storage = None if self._closed else self._writer.storage
        chunk = getattr(storage, 'chunk', None)
        if chunk is None or not getattr(chunk, 'msgs', None) or not hasattr(storage, 'close_chunk'):
            return
        storage.close_chunk()
        storage.bio.flush()

    def topic_counts(self) -> Dict[str, int]:
        return {c.topic: self._writer.counts[c.id] for c in self._connections.values()}

    def publish(self, custom_data: Dict[str, str]) -> Path:
        """Close, checksum, fsync and atomically rename into place; returns the final directory."""
        for k, v in custom_data.items():
            self._writer.set_custom_data(k, v)
        self._writer.close()
        self._closed = True
        _set_distro(self.partial_dir / 'metadata.yaml')
        mcap = mcap_file(self.partial_dir)
        sums = f'{sha256_file(mcap)}  {mcap.name}\n' \
               f'{sha256_file(self.partial_dir / "metadata.yaml")}  metadata.yaml\n'
        (self.partial_dir / CHECKSUMS).write_text(sums)
        if self.fsync:
            for f in (mcap, self.partial_dir / 'metadata.yaml', self.partial_dir / CHECKSUMS):
                _fsync_path(f)
        # A crash from here on leaves a closed, checksummed bag under .partial: repair renames it.
        (self.partial_dir / RECORDING_INFO).unlink(missing_ok=True)
        (self.partial_dir / RECORDING_LOCK).unlink(missing_ok=True)     # our fd keeps the flock
        final = self._free_name(self.final_dir)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.partial_dir, final)          # atomic on one file system
        self._release_lock()
        if self.fsync:
            _fsync_path(final.parent, directory=True)
            _fsync_path(self.partial_dir.parent, directory=True)
        return final

    def abandon(self, reason: str) -> None:
        """Stop writing but keep the partial bag for `chef data repair` (I/O error, full disk)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.abort()
        finally:
            try:
                info_path = self.partial_dir / RECORDING_INFO
                info = json.loads(info_path.read_text()) if info_path.exists() else {}
                info['abandoned'] = reason
                write_json_atomic(info_path, info)
            except OSError:
                pass
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def _free_name(path: Path) -> Path:
        if not path.exists():
            return path
        k = 2
        while path.with_name(f'{path.name}-{k}').exists():
            k += 1
        return path.with_name(f'{path.name}-{k}')


def _as_rosbag2_records(storage) -> None:
    """Make rosbags' MCAP writer write what rosbag2's own MCAP plugin writes: channel metadata with
    `offered_qos_profiles` *and* `topic_type_hash`, and the real distro in the rosbag2 metadata
    record. Patches the instance (rosbags 0.11 internals); a no-op for another storage."""
    if not all(hasattr(storage, a) for a in ('channels', 'channel_stats', 'chunk', 'schemas', 'close')):
        return
    from io import BytesIO

    from rosbags.rosbag2 import storage_mcap as sm
    close = storage.close

    def add_connection(connection, offered_qos_profiles: str) -> None:
        meta = BytesIO()
        for key, value in (('offered_qos_profiles', offered_qos_profiles),
                           ('topic_type_hash', connection.digest or '')):
            sm.write_string(meta, key)
            sm.write_string(meta, value)
        storage.channels.append(sm.Channel(connection.id, connection.msgtype, connection.topic,
                                           connection.ext.serialization_format, meta.getvalue()))
        storage.channel_stats[connection.id] = 0
        sm.write_channel(storage.chunk.bio, storage.channels[-1], storage.schemas)

    def close_with_distro(version: int, metadata: str) -> None:
        close(version, metadata.replace('ros_distro: rosbags', f'ros_distro: {ROS_DISTRO}'))

    storage.add_connection = add_connection
    storage.close = close_with_distro


def _set_distro(metadata_yaml: Path) -> None:
    text = metadata_yaml.read_text()
    if 'ros_distro: rosbags' in text:
        metadata_yaml.write_text(text.replace('ros_distro: rosbags', f'ros_distro: {ROS_DISTRO}'))


# --------------------------------------------------------------------------------------------------
def read_bag_metadata(bag_dir: Path) -> Dict[str, Any]:
    """The `rosbag2_bagfile_information` mapping of a bag's metadata.yaml (any version)."""
    import yaml
    path = Path(bag_dir) / 'metadata.yaml'
    if not path.is_file():
        raise BagError(f'{bag_dir}: no metadata.yaml (not a rosbag2 bag, or a partial one)')
    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise BagError(f'{path}: not valid YAML ({exc})') from None
    info = (data or {}).get('rosbag2_bagfile_information')
    if not isinstance(info, dict):
        raise BagError(f'{path}: lacks rosbag2_bagfile_information')
    return info


def declared_types(info: Dict[str, Any]) -> Dict[str, str]:
    """topic -> type as metadata.yaml declares it."""
    out = {}
    for t in info.get('topics_with_message_count') or []:
        meta = t.get('topic_metadata') or {} if isinstance(t, dict) else {}
        if isinstance(meta.get('name'), str) and isinstance(meta.get('type'), str):
            out[meta['name']] = meta['type']
    return out


def storage_files(bag_dir: Path, info: Optional[Dict[str, Any]] = None) -> List[Path]:
    info = info or read_bag_metadata(bag_dir)
    files = [Path(bag_dir) / p for p in info.get('relative_file_paths') or []]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise BagError(f'{bag_dir}: storage file(s) missing: {missing}')
    return files


class BagMessage:
    __slots__ = ('topic', 'msgtype', 'log_time_ns', 'raw')

    def __init__(self, topic, msgtype, log_time_ns, raw):
        self.topic, self.msgtype, self.log_time_ns, self.raw = topic, msgtype, log_time_ns, raw


# What a storage plugin's reader may raise on a damaged or foreign file (rosbags wraps most in
# ReaderError; KeyError: a schema encoding it does not know; sqlite3.Error: a damaged database).
def _storage_errors():
    import sqlite3
    from rosbags.rosbag2.errors import ReaderError
    return (ReaderError, struct.error, EOFError, ValueError, KeyError, OSError, sqlite3.Error)


def _definition_format(conn) -> str:
    return {'MSG': 'ros2msg', 'IDL': 'ros2idl'}.get(getattr(conn.msgdef.format, 'name', ''), '')


def _open_storage(path: Path):
    """rosbags' reader of one storage file: MCAP (`.mcap`) or the sqlite3 plugin's database
    (`.db3`), each read through its own plugin from the path metadata.yaml lists (rosbags' directory
    reader matches metadata.yaml to the storage and reads v4 MCAP bags as empty)."""
    from rosbags.rosbag2 import Reader
    if path.suffix not in ('.mcap', '.db3'):
        raise BagError(f'{path}: unsupported storage (only mcap and sqlite3 bags are read)')
    return Reader(path)


def readable_connections(reader, bag_dir: Path, wanted=None, declared: Optional[Dict[str, str]] = None,
                         ) -> Tuple[List[Any], Dict[int, str], Dict[str, str]]:
    """(connections whose type can be described, typestore name per connection id, skipped topic ->
    reason) of one open storage file; each skipped topic is also warned about (SkippedTopicWarning).
    `declared`: topic -> type from metadata.yaml, for channels stored without a schema."""
    conns, names, skipped = [], {}, {}
    for c in reader.connections:
        if wanted is not None and c.topic not in wanted:
            continue
        msgtype = (declared or {}).get(c.topic, c.msgtype) if c.msgtype == '__schemaless__' else c.msgtype
        try:
            names[c.id] = describe_type(msgtype, c.msgdef.data, _definition_format(c))
        except UnsupportedTypeError as exc:
            if c.topic not in skipped:
                skipped[c.topic] = str(exc)
                warnings.warn(f'{bag_dir}: skipping topic {c.topic} [{msgtype}]: {exc}',
                              SkippedTopicWarning, stacklevel=3)
            continue
        conns.append(c)
    return conns, names, skipped


def iter_messages(bag_dir: Path, topics: Optional[Iterable[str]] = None,
                  skipped: Optional[Dict[str, str]] = None) -> Iterator[BagMessage]:
    """Every message of a rosbag2 bag (mcap or sqlite3 storage, metadata v4-v9, split into any
    number of files), optionally only `topics`.

    Raw CDR bytes with the bag's log time (the receive stamp) and the typestore name of the type
    (`canonical_type`); decode with `deserialize`. A topic whose type cannot be described is skipped
    with a SkippedTopicWarning naming it (and recorded in `skipped`: topic -> reason), never the
    whole bag. A truncated or corrupt storage file raises BagError naming the file.
    """
    info = read_bag_metadata(bag_dir)
    wanted = set(topics) if topics is not None else None
    errors = _storage_errors()
    for path in storage_files(bag_dir, info):
        try:
            with _open_storage(path) as reader:
                conns, names, missed = readable_connections(reader, bag_dir, wanted, declared_types(info))
                if skipped is not None:
                    skipped.update(missed)
                if not conns:
                    continue
                for conn, t, raw in reader.messages(connections=conns):
                    yield BagMessage(conn.topic, names[conn.id], t, raw)
        except errors as exc:
            raise BagError(f'{path}: unreadable ({type(exc).__name__}: {exc})') from None


def bag_connections(bag_dir: Path) -> List[Tuple[str, str, int]]:
    """(topic, msgtype as stored, message count) per connection, from the storage files' summaries."""
    out: Dict[Tuple[str, str], int] = {}
    errors = _storage_errors()
    for path in storage_files(bag_dir):
        try:
            with _open_storage(path) as reader:
                for c in reader.connections:
                    out[(c.topic, c.msgtype)] = out.get((c.topic, c.msgtype), 0) + c.msgcount
        except errors as exc:
            raise BagError(f'{path}: unreadable ({type(exc).__name__}: {exc})') from None
    return [(t, m, n) for (t, m), n in out.items()]
