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

Reading: `iter_messages` reads the storage files listed in metadata.yaml directly (rosbags matches
metadata.yaml connections to MCAP channels by QoS and silently yields nothing when they differ, as in
bags from rosbag2 Foxy), `deserialize` tolerates the trailing padding rmw adds to CDR buffers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from chef_recorder.layout import CHECKSUMS, RECORDING_INFO, RECORDING_LOCK, mcap_file

ROSBAG_VERSION = 9
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


def warm_up(msgtypes: Iterable[str]) -> None:
    """Load the typestore and generate the code for `msgtypes` now (~0.5 s), not on the first message."""
    ts = typestore()
    for t in msgtypes:
        ts.get_msgdef(t)
        ts.generate_msgdef(t, ros_version=2)
        ts.hash_rihs01(t)
    String = ts.types['std_msgs/msg/String']
    deserialize(ts.serialize_cdr(String(data='{}'), 'std_msgs/msg/String'), 'std_msgs/msg/String')


def ensure_type(msgtype: str, msgdef: str = '', fmt: str = 'ros2msg') -> None:
    """Register `msgtype` from a bag's schema text when the typestore does not know it."""
    ts = typestore()
    if msgtype in ts.types:
        return
    if not msgdef:
        raise BagError(f'unknown message type {msgtype!r} and no definition in the bag')
    from rosbags.typesys import get_types_from_idl, get_types_from_msg
    if fmt == 'ros2idl':
        types = get_types_from_idl(msgdef)
    else:
        types = {}
        # rosbag2 concatenates dependent definitions separated by '=' lines with 'MSG: pkg/Type'.
        parts = msgdef.split('\n' + '=' * 80 + '\n')
        types.update(get_types_from_msg(parts[0], msgtype))
        for part in parts[1:]:
            head, _, body = part.partition('\n')
            if head.startswith('MSG: '):
                name = head[5:].strip()
                if '/msg/' not in name:
                    name = name.replace('/', '/msg/', 1)
                types.update(get_types_from_msg(body, name))
    ts.register({k: v for k, v in types.items() if k not in ts.types})


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
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
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


def iter_messages(bag_dir: Path, topics: Optional[Iterable[str]] = None) -> Iterator[BagMessage]:
    """Every message of a rosbag2 bag (mcap or sqlite3 storage), optionally only `topics`.

    Raw CDR bytes with the bag's log time (the receive stamp); decode with `deserialize`.
    Errors name the file: a truncated or corrupt storage file raises BagError.
    """
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError
    info = read_bag_metadata(bag_dir)
    wanted = set(topics) if topics is not None else None
    for path in storage_files(bag_dir, info):
        try:
            with Reader(path) as reader:
                conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
                for c in conns:
                    ensure_type(c.msgtype, c.msgdef.data,
                                'ros2idl' if c.msgdef.data.startswith('=' * 80 + '\nIDL: ') else 'ros2msg')
                if not conns:
                    continue
                for conn, t, raw in reader.messages(connections=conns):
                    yield BagMessage(conn.topic, conn.msgtype, t, raw)
        except (ReaderError, struct.error, EOFError, ValueError, OSError) as exc:
            raise BagError(f'{path}: unreadable ({type(exc).__name__}: {exc})') from None


def bag_connections(bag_dir: Path) -> List[Tuple[str, str, int]]:
    """(topic, msgtype, message count) per connection, read from the storage files' summaries."""
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError
    out: Dict[Tuple[str, str], int] = {}
    for path in storage_files(bag_dir):
        try:
            with Reader(path) as reader:
                for c in reader.connections:
                    out[(c.topic, c.msgtype)] = out.get((c.topic, c.msgtype), 0) + c.msgcount
        except (ReaderError, struct.error, EOFError, ValueError, OSError) as exc:
            raise BagError(f'{path}: unreadable ({type(exc).__name__}: {exc})') from None
    return [(t, m, n) for (t, m), n in out.items()]
