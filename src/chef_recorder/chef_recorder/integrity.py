"""Verify bags, find partial episodes, and repair what MCAP allows (ROS-free).

Partial episodes (`episodes/<cell>/.partial/<id>/`) are in one of three states:
  recording  its recording.lock is flock-held: a live recorder is writing it - left alone;
  closed     bag closed and checksummed but not renamed (crash in the last step) - repair renames it;
  crashed    the recorder died mid-episode - the MCAP has no summary or footer.
Repair of a crashed partial (or of a published bag that fails verification) salvages every
decodable message of the complete MCAP records with the independent `mcap` stream reader (chunk by
chunk: a corrupt chunk is skipped, a truncated one yields its complete records), replays them
through the recorder core (same boundary and metadata rules), publishes the result atomically as
status `recovered` and keeps the original in `episodes/<cell>/.quarantine/`. A crashed partial moves
there only after its salvage is published (until then it waits under .partial as `<id>.stale-<ns>`),
so a repair killed midway is finished by the next one. When a restarted recorder already
published the rest of the episode, both are merged into one bag (the published one is quarantined
too). A restarted recorder does the same itself when it receives the episode's start again
(recording.py). Nothing is deleted.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from chef_recorder.bagio import (
    BagError, SkippedTopicWarning, bag_connections, deserialize, ensure_type, is_stamped, iter_messages,
    lock_is_held, read_bag_metadata,
)
from chef_recorder.decode import check_checksums
from chef_recorder.layout import CHECKSUMS, RECORDING_INFO, RECORDING_LOCK, DataLayout, mcap_file
from chef_recorder.metadata import PREFIX


@dataclass
class Salvage:
    messages: List[Tuple[str, str, int, bytes]] = field(default_factory=list)  # topic, type, log ns, raw
    undecodable: int = 0
    stopped_at: str = ''          # why reading stopped early ('' = clean end of file)
    skipped: List[str] = field(default_factory=list)     # corrupt chunks skipped (reading went on)

    def note(self) -> str:
        """Where reading stopped and what it skipped ('' if it read everything)."""
        parts = ([f'read until: {self.stopped_at}'] if self.stopped_at else []) + self.skipped[:3]
        if len(self.skipped) > 3:
            parts.append(f'{len(self.skipped) - 3} more corrupt chunks skipped')
        return '; '.join(parts)


def verify_bag(bag_dir: Path, deep: bool = False, notes: Optional[List[str]] = None,
               episode: bool = False) -> List[str]:
    """Problems of a bag ([] = fine): metadata, checksums, index, counts; with `deep`, every message is
    read and decoded. Never raises: whatever goes wrong is a problem naming the bag. Topics whose type
    cannot be described are skipped and named in `notes` (not problems). `episode`: the bag sits in a
    data set's store, so it must be a CHEF episode (chef.* custom_data)."""
    try:
        return _verify_bag(Path(bag_dir), deep, notes if notes is not None else [], episode)
    except Exception as exc:  # noqa: BLE001 - a malformed bag is a finding, not a crash
        return [f'{bag_dir}: {one_line(exc)}']


def one_line(exc: BaseException) -> str:
    """An exception as one line: its first line, its type when the text does not say it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
    return text if isinstance(exc, (RuntimeError, OSError, ValueError)) and text else \
        f'{type(exc).__name__}{": " + text if text else ""}'


def _verify_bag(bag_dir: Path, deep: bool, notes: List[str], episode: bool) -> List[str]:
    try:
        info = read_bag_metadata(bag_dir)
    except BagError as exc:
        return [str(exc)]
    problems: List[str] = []
    custom = info.get('custom_data')
    ours = isinstance(custom, dict) and any(str(k).startswith(PREFIX) for k in custom)
    if episode and not ours:
        problems.append(f'{bag_dir}: not a CHEF episode (a rosbag2 bag without chef.* custom_data)')
    if (bag_dir / CHECKSUMS).is_file():
        problems += check_checksums(bag_dir)
    elif ours:
        problems.append(f'{bag_dir}: no {CHECKSUMS}')
    expected: Dict[str, int] = {}
    for t in info.get('topics_with_message_count') or []:
        try:
            expected[str(t['topic_metadata']['name'])] = int(t.get('message_count', 0))
        except (KeyError, TypeError, ValueError, AttributeError):
            problems.append(f'{bag_dir}: metadata.yaml has a malformed topic entry: {str(t)[:80]}')
    try:
        counts: Dict[str, int] = {}
        for topic, _, n in bag_connections(bag_dir):
            counts[topic] = counts.get(topic, 0) + n
    except BagError as exc:
        return problems + [str(exc)]
    for topic, n in expected.items():
        if counts.get(topic, 0) != n:
            problems.append(f'{bag_dir}: {topic} has {counts.get(topic, 0)} messages in the storage index, '
                            f'metadata.yaml says {n}')
    if deep:
        seen: Dict[str, int] = {}
        skipped: Dict[str, str] = {}
        bad = 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', SkippedTopicWarning)      # reported as notes
                for m in iter_messages(bag_dir, skipped=skipped):
                    seen[m.topic] = seen.get(m.topic, 0) + 1
                    try:
                        deserialize(m.raw, m.msgtype)
                    except BagError:
                        bad += 1
        except BagError as exc:
            problems.append(str(exc))
        if bad:
            problems.append(f'{bag_dir}: {bad} undecodable messages')
        notes += [f'{bag_dir}: topic {t} skipped: {why}' for t, why in sorted(skipped.items())]
        for topic, n in expected.items():
            if topic not in skipped and seen.get(topic, 0) != n:
                problems.append(f'{bag_dir}: read {seen.get(topic, 0)} {topic} messages, metadata.yaml says {n}')
    return problems


def recognised_episode(bag_dir: Path) -> str:
    """'' if `bag_dir` (in a data set's store) is a CHEF episode `repair` may work on, else why not: a
    CHEF bag has chef.* custom_data, or - metadata.yaml damaged - its MCAP and SHA256SUMS."""
    bag_dir = Path(bag_dir)
    if not any(bag_dir.iterdir()):
        return 'empty directory'
    try:
        custom = read_bag_metadata(bag_dir).get('custom_data')
    except BagError:
        if mcap_file(bag_dir).is_file() and (bag_dir / CHECKSUMS).is_file():
            return ''
        return 'no readable metadata.yaml and no CHEF MCAP + SHA256SUMS'
    if isinstance(custom, dict) and any(str(k).startswith(PREFIX) for k in custom):
        return ''
    return 'a rosbag2 bag without chef.* custom_data (not recorded by CHEF)'


def recognised_partial(partial_dir: Path) -> str:
    """'' if `partial_dir` is a recorder's partial episode (recording.json or an MCAP), else why not."""
    partial_dir = Path(partial_dir)
    if (partial_dir / RECORDING_INFO).is_file() or any(partial_dir.glob('*.mcap')):
        return ''
    return 'empty directory' if not any(partial_dir.iterdir()) else 'no recording.json and no MCAP'


def partial_state(partial_dir: Path) -> str:
    """'recording' | 'closed' | 'crashed' (see the module docstring)."""
    partial_dir = Path(partial_dir)
    if lock_is_held(partial_dir / RECORDING_LOCK):
        return 'recording'
    if (partial_dir / 'metadata.yaml').is_file() and (partial_dir / CHECKSUMS).is_file() \
            and not check_checksums(partial_dir):
        return 'closed'
    return 'crashed'


def salvage(mcap_path: Path) -> Salvage:
    """Every decodable message of the complete records of a (possibly truncated) MCAP file.

    Walks the top-level records itself, so that a chunk cut by the truncation still yields the
    messages it holds completely (uncompressed chunks, as rosbags writes them; zstd chunks are
    decompressed as far as the data goes), and a corrupt chunk inside the file costs only its own
    messages after the damage (its length is known, reading goes on with the next record). Records
    are parsed by the `mcap` library.
    """
    import io
    import struct as st

    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    out = Salvage()
    schemas: Dict[int, Tuple[str, str, str]] = {}
    channels: Dict[int, Tuple[str, int]] = {}

    def handle(rec):
        if isinstance(rec, Schema):
            schemas[rec.id] = (rec.name, rec.encoding, rec.data.decode(errors='replace'))
        elif isinstance(rec, Channel):
            channels[rec.id] = (rec.topic, rec.schema_id)
        elif isinstance(rec, Message):
            ch = channels.get(rec.channel_id)
            if ch is None or ch[1] not in schemas:
                out.undecodable += 1
                return
            name, enc, text = schemas[ch[1]]
            try:
                name = ensure_type(name, text, enc)
                deserialize(rec.data, name)
            except Exception:  # noqa: BLE001 - garbage in a damaged file
                out.undecodable += 1
                return
            out.messages.append((ch[0], name, rec.log_time, bytes(rec.data)))

    def parse(records: bytes) -> str:
        """Handle the records in `records`; returns why parsing stopped early ('' if it did not)."""
        bio = io.BytesIO(records)
        good = 0
        try:
            for rec in StreamReader(bio, skip_magic=True, emit_chunks=True,
                                    record_size_limit=1 << 28).records:
                handle(rec)
                good = bio.tell()
        except Exception as exc:  # noqa: BLE001 - truncation: EndOfFile, struct errors
            if good == len(records):
                return ''                               # the stream reader ends with EndOfFile
            return f'{type(exc).__name__} {exc}'.strip()
        return ''

    if not Path(mcap_path).is_file():
        out.stopped_at = f'no MCAP file ({Path(mcap_path).name})'
        return out
    data = Path(mcap_path).read_bytes()
    if data[:8] != b'\x89MCAP0\r\n':
        out.stopped_at = 'not an MCAP file (bad magic)'
        return out
    pos = 8
    while pos < len(data):
        if pos + 9 > len(data):
            out.stopped_at = f'truncated record header at byte {pos}'
            break
        op = data[pos]
        if not 0x01 <= op <= 0x0F:                      # not an MCAP opcode: lengths cannot be trusted
            out.stopped_at = f'invalid record opcode 0x{op:02x} at byte {pos}'
            break
        (length,) = st.unpack_from('<Q', data, pos + 1)
        start, end = pos + 9, pos + 9 + length
        cut = end > len(data)
        body = data[start:min(end, len(data))]
        if op == 0x02:                                  # footer: clean end
            break
        if op == 0x06:                                  # chunk
            try:
                comp_len = st.unpack_from('<I', body, 28)[0]
                compression = body[32:32 + comp_len].decode()
                rec_len = st.unpack_from('<Q', body, 32 + comp_len)[0]
                records = body[40 + comp_len:40 + comp_len + rec_len]
            except (st.error, UnicodeDecodeError):
                out.stopped_at = f'truncated chunk header at byte {pos}'
                break
            if compression == 'zstd':
                import zstandard
                try:
                    records = zstandard.ZstdDecompressor().decompressobj().decompress(records)
                except zstandard.ZstdError as exc:
                    out.stopped_at = f'zstd chunk at byte {pos}: {exc}'
                    break
            elif compression:
                out.stopped_at = f'unsupported chunk compression {compression!r} at byte {pos}'
                break
            why = parse(records)
            if why and not cut:
                out.skipped.append(f'corrupt chunk at byte {pos}: {why}')
        elif op in (0x03, 0x04, 0x05) and not cut:     # schema, channel, message outside chunks
            why = parse(data[pos:end])
            if why:
                out.stopped_at = f'corrupt record at byte {pos}: {why}'
                break
        if cut:
            out.stopped_at = f'file ends inside a record at byte {pos} ({len(data)} of {end} bytes)'
            break
        pos = end
    return out


def _namespace_of(messages) -> str:
    from chef_recorder.decode import contract_name
    for topic, *_ in messages:
        name = contract_name(topic)
        if name and not name.startswith('/') and topic.endswith('/' + name):
            return topic[:-len(name) - 1]
    return ''


def _merge_streams(*streams) -> List[Tuple[str, str, int, bytes]]:
    """The messages of several salvaged streams of one episode, by receive time, each once."""
    seen, out = set(), []
    for m in sorted((m for s in streams for m in s), key=lambda m: m[2]):
        key = (m[0], m[2], m[3])
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _replay(layout: DataLayout, cell: str, messages, start_event_json: Optional[str],
            recovered_from: str, end_reason: str) -> Optional[Path]:
    """Feed salvaged messages through the recorder core; returns the published bag (None if empty).
    An episode whose end or abort event was not salvaged is closed for `end_reason`."""
    from chef_recorder.recording import EpisodeRecorder, RecorderSettings, roles_for_namespace
    ns = _namespace_of(messages) or '/' + cell
    settings = RecorderSettings(data_dir=str(layout.root), cell=cell, roles=roles_for_namespace(ns),
                                recovered_from=recovered_from, fsync=True,
                                pending_timeout_s=1e9, close_timeout_s=1e9, stall_timeout_s=1e9)
    rec = EpisodeRecorder(settings, clock=lambda: 0.0, background=False)
    if start_event_json:
        from chef_contract.events import EpisodeEvent
        from chef_recorder.bagio import typestore
        ts = typestore()
        String = ts.types['std_msgs/msg/String']
        raw = bytes(ts.serialize_cdr(String(data=start_event_json), 'std_msgs/msg/String'))
        t0 = messages[0][2] if messages else time.time_ns()
        rec.on_event(EpisodeEvent.from_json(start_event_json), ns + '/episode/events',
                     'std_msgs/msg/String', raw, t0)
    for topic, msgtype, log_ns, raw in messages:
        rec.receive(topic, msgtype, raw, log_ns, is_stamped(msgtype))
    rec.shutdown(reason=end_reason)
    return rec.published[0] if rec.published else None


def repair_partial(layout: DataLayout, cell: str, partial_dir: Path) -> Optional[Path]:
    """Publish a closed partial, or salvage a crashed one; returns the published bag (None: nothing
    recoverable). A partial that is still being recorded is refused."""
    partial_dir = Path(partial_dir)
    why = recognised_partial(partial_dir)
    if why:
        raise BagError(f'{partial_dir}: not a recorder\'s partial ({why}); left untouched')
    state = partial_state(partial_dir)
    if state == 'recording':
        raise BagError(f'{partial_dir} is being recorded by a live recorder')
    name = partial_dir.name.split('.stale-')[0]
    if state == 'closed':
        final = layout.episode_dir(cell, name)
        if final.exists():
            final = final.with_name(f'{final.name}-recovered-{time.time_ns()}')
        (partial_dir / RECORDING_LOCK).unlink(missing_ok=True)
        (partial_dir / RECORDING_INFO).unlink(missing_ok=True)
        os.rename(partial_dir, final)
        return final
    info_path = partial_dir / RECORDING_INFO
    info = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except ValueError:
            info = {}
    # crash-safe order (`chef loop` repairs when a cell session ends, so a kill can land here): the
    # original waits under .partial, where the next repair finds it again, until what it holds is
    # published; only then does it move to .quarantine
    kept = quarantine_path(layout, cell, partial_dir.name, 'partial')
    aside = set_aside(partial_dir)
    found = salvage(mcap_file(aside))
    why = f'crashed partial {layout.relative(kept)}' + (f' ({found.note()})' if found.note() else '')
    pid = info.get('pid')
    died = f'the recorder{f" (pid {pid})" if pid else ""} died before the episode ended'
    final = layout.episode_dir(cell, name)
    if not final.is_dir():
        out = _replay(layout, cell, found.messages, info.get('event'), why, died)
        os.rename(aside, kept)
        return out
    from chef_contract import topics as T
    from chef_recorder.decode import contract_name
    if all(contract_name(m[0]) in (T.EPISODE_EVENTS, T.POLICY_INFO) for m in found.messages):
        os.rename(aside, kept)
        return None                                 # no data to add to the published rest
    # a restarted recorder published the rest of this episode without this part: one bag of both
    published = quarantine(layout, cell, final, 'superseded')
    rest = salvage(mcap_file(published))
    why += f' merged with {layout.relative(published)}' + (f' ({rest.note()})' if rest.note() else '')
    out = None
    try:
        out = _replay(layout, cell, _merge_streams(found.messages, rest.messages), info.get('event'), why,
                      died)
    finally:
        if out is None and not final.exists():
            os.rename(published, final)             # never leave the episode with less than before
    os.rename(aside, kept)
    return out


def repair_crashed_partials(layout: DataLayout, cells=None) -> List[Tuple[Path, Optional[Path], str]]:
    """Repair every crashed partial (of `cells`, default all) and catalogue the results:
    [(partial, published bag or None if nothing was recoverable, error or '')]. For a caller that knows
    the recorders are gone (a stopped graph); `chef data repair` is the interactive version."""
    from chef_recorder.catalog import Catalog
    done = []
    todo = [(c, d) for c, d in layout.iter_partials()
            if (cells is None or c in cells) and not recognised_partial(d) and partial_state(d) == 'crashed']
    if not todo:
        return done
    with Catalog(layout) as cat:
        for cell, d in todo:
            try:
                out = repair_partial(layout, cell, d)
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                done.append((d, None, f'{type(exc).__name__}: {exc}'))
                continue
            if out is not None:
                cat.add_bag(out)
            done.append((d, out, ''))
    return done


def repair_bag(layout: DataLayout, bag_dir: Path) -> Optional[Path]:
    """Replace a published bag that fails verification by what can be salvaged from it."""
    bag_dir = Path(bag_dir)
    why = recognised_episode(bag_dir)
    if why:
        raise BagError(f'{bag_dir}: not a CHEF episode ({why}); left untouched')
    cell = bag_dir.parent.name
    start_json = None
    try:
        from chef_recorder.metadata import from_custom_data
        meta = from_custom_data(read_bag_metadata(bag_dir).get('custom_data'))
        if meta.get('episode_id'):
            from chef_contract.events import EpisodeEvent
            start_json = EpisodeEvent(
                event='start', episode_id=meta['episode_id'], cell=cell, source=meta.get('source') or 'sim',
                triplet=meta.get('triplet') or '', seed=meta.get('seed') or 0,
                stamp_ns=int(meta.get('start_stamp_ns') or 0), tags=meta.get('tags') or {}).to_json()
    except (BagError, ValueError, TypeError):
        start_json = None
    kept = quarantine(layout, cell, bag_dir, 'corrupt')
    found = salvage(mcap_file(kept))
    why = f'corrupt bag {layout.relative(kept)}' + (f' ({found.note()})' if found.note() else '')
    return _replay(layout, cell, found.messages, start_json, why,
                   'the readable part of the bag ends before the episode\'s end event')


def quarantine(layout: DataLayout, cell: str, path: Path, kind: str) -> Path:
    """Move `path` to episodes/<cell>/.quarantine/<name>.<kind>-<ns> (kept, never deleted)."""
    dest = quarantine_path(layout, cell, path.name, kind)
    os.rename(path, dest)
    return dest


def quarantine_path(layout: DataLayout, cell: str, name: str, kind: str) -> Path:
    """Where `quarantine` puts `name` now: episodes/<cell>/.quarantine/<name>.<kind>-<ns>."""
    q = layout.quarantine_dir(cell)
    q.mkdir(parents=True, exist_ok=True)
    return q / f'{name}.{kind}-{time.time_ns()}'


def set_aside(partial_dir: Path) -> Path:
    """Rename a dead recorder's partial to `<id>.stale-<ns>` in the same .partial directory (a
    name the recorder also uses for it): still a crashed partial for the next repair, while the
    recorder core publishes the episode's salvage under the episode's own partial name."""
    partial_dir = Path(partial_dir)
    if '.stale-' in partial_dir.name:
        return partial_dir
    aside = partial_dir.with_name(f'{partial_dir.name}.stale-{time.time_ns()}')
    os.rename(partial_dir, aside)
    return aside
