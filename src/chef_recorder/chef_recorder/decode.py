"""Bag -> per-episode arrays aligned by control tick, stored as a rebuildable .npy cache (ROS-free).

`build_cache(bag_dir, cache_dir)` reads one episode bag once, applies the alignment rule of align.py
and writes, under `cache_dir` (atomically, via a temporary directory):

    stamps_ns.npy        int64[T+1]         tick stamps
    state.npy            float32[T+1, D]    every state observation key side by side (meta.json: columns)
    <camera>.npy         uint8[T+1, H, W, C] per camera
    actions.npy          float32[T, 5]      behaviour action: policy/twist_cmd + policy/gripper_cmd
    executed_actions.npy float32[T, 5]      what the safety filter forwarded (NaN where not recorded)
    reward_terms.npy     float32[T, R]      reward/terms at t_{k+1}, columns = spec.REWARD_TERMS
    intentions.npy       int16[T]           index into spec.INTENTIONS (-1 unknown)
    obs_ok.npy           bool[T+1]          every observation topic had a message for the tick
    valid.npy            bool[T]            transition usable (obs k, k+1, action, reward, no lost tick)
    meta.json            layout + the bag's episode metadata + the bag digest the cache was built from

The bag stays the source of truth: a cache whose digest differs from the bag's SHA256SUMS is rebuilt.
Missing observations are filled from the nearest earlier tick (or the first later one) and marked in
obs_ok, so arrays never hold garbage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from chef_contract import topics as T
from chef_contract.action import from_command
from chef_contract.events import EpisodeEvent, EventFormatError
from chef_contract.frames import FrameError, messages_to_frame
from chef_contract.msgnp import msg_to_image
from chef_contract.payloads import StepInfo
from chef_contract.spec import (
    ACTION_DIM, CAMERA_NAMES, CONTROL_PERIOD_S, GRIPPER_CLOSED_POSITION_RAD, GRIPPER_OPEN_POSITION_RAD,
    INTENTIONS, REWARD_TERMS,
)
from chef_recorder import align
from chef_recorder.bagio import (
    BagError, deserialize, header_stamp_ns, iter_messages, read_bag_metadata, sha256_file,
)
from chef_recorder.layout import CHECKSUMS, mcap_file
from chef_recorder.metadata import from_custom_data

DECODER_VERSION = 3      # 2: policy gripper from step_info; 3: executed gripper from joint_command/applied
STATE_TOPICS = T.STATE_TOPICS
TICK_TOLERANCE = 0.5


class CorruptEpisodeError(BagError):
    """A bag that fails its checksum or cannot be decoded into an episode."""


class EmptyEpisodeError(BagError):
    """A bag with no complete transition."""


def contract_name(topic: str) -> Optional[str]:
    """'/cell0/joint_states' -> 'joint_states' (None if not a contract topic)."""
    name = topic.lstrip('/')
    if name in T.TOPICS_BY_NAME:
        return name
    if '/' + name in T.TOPICS_BY_NAME:
        return '/' + name
    parts = name.split('/', 1)
    if len(parts) == 2 and parts[1] in T.TOPICS_BY_NAME:
        return parts[1]
    return None


def bag_digest(bag_dir: Path) -> str:
    """What a cache is keyed on: the bag's SHA256SUMS (or size+mtime for foreign bags)."""
    sums = Path(bag_dir) / CHECKSUMS
    if sums.is_file():
        return sums.read_text().strip()
    f = mcap_file(bag_dir)
    st = f.stat()
    return f'{f.name}:{st.st_size}:{st.st_mtime_ns}'


def check_checksums(bag_dir: Path) -> List[str]:
    """Problems found by re-hashing the files listed in SHA256SUMS ([] = all good)."""
    sums = Path(bag_dir) / CHECKSUMS
    if not sums.is_file():
        return [f'{bag_dir}: no {CHECKSUMS}']
    problems = []
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition('  ')
        f = Path(bag_dir) / name.strip()
        if not f.is_file():
            problems.append(f'{f}: missing')
        elif sha256_file(f) != digest.strip():
            problems.append(f'{f}: sha256 mismatch (file changed or corrupt)')
    return problems


def _gripper_target(msg) -> Optional[float]:
    data = list(msg.data)
    return float(data[0]) if data else None


def _pair_by_receive_time(cmd_times: np.ndarray, other: List[Tuple[int, Any]],
                          max_gap_ns: int) -> Dict[int, Any]:
    """Assign each unstamped message to the command received nearest in time (within max_gap)."""
    out: Dict[int, Any] = {}
    if not other or cmd_times.size == 0:
        return out
    times = np.asarray([t for t, _ in other], np.int64)
    near = align.nearest(cmd_times, times)
    for (t, value), k in zip(other, near):
        if k >= 0 and abs(int(cmd_times[k]) - t) <= max_gap_ns:
            out[int(k)] = value
    return out


def build_cache(bag_dir: Path, cache_dir: Path, verify_checksum: bool = True,
                slop_s: float = CONTROL_PERIOD_S, period_s: float = CONTROL_PERIOD_S,
                replace_current: bool = False) -> Path:
    """Decode `bag_dir` into `cache_dir` (replaced atomically); returns cache_dir. A cache that is
    already current when the decode finishes is kept (see _install) unless `replace_current`."""
    bag_dir, cache_dir = Path(bag_dir), Path(cache_dir)
    if verify_checksum and (bag_dir / CHECKSUMS).is_file():
        problems = check_checksums(bag_dir)
        if problems:
            raise CorruptEpisodeError('; '.join(problems))
    info = read_bag_metadata(bag_dir)
    meta = from_custom_data(info.get('custom_data'))
    digest = bag_digest(bag_dir)

    # ---- one pass over the bag: small messages decoded, images kept as raw bytes -----------------
    by_topic: Dict[str, List[Tuple[int, int, Any]]] = {}      # contract name -> [(stamp, recv, msg)]
    images: Dict[str, List[Tuple[int, bytes]]] = {}           # camera -> [(stamp, raw)]
    unstamped: Dict[str, List[Tuple[int, Any]]] = {}          # contract name -> [(recv, msg)]
    events: List[EpisodeEvent] = []
    step_info: Dict[int, StepInfo] = {}
    image_topics = {T.image_topic(c): c for c in CAMERA_NAMES}
    try:
        for m in iter_messages(bag_dir):
            name = contract_name(m.topic)
            if name is None:
                continue
            if name in image_topics:
                images.setdefault(image_topics[name], []).append((header_stamp_ns(m.raw), bytes(m.raw)))
                continue
            if name in (T.EPISODE_EVENTS, T.POLICY_STEP):
                text = deserialize(m.raw, m.msgtype).data
                if name == T.EPISODE_EVENTS:
                    try:
                        events.append(EpisodeEvent.from_json(text))
                    except EventFormatError:
                        pass
                else:
                    try:
                        info = StepInfo.from_json(text)
                        step_info[info.stamp_ns] = info
                    except EventFormatError:
                        pass
                continue
            if name in (T.POLICY_GRIPPER, T.GRIPPER_CMD):
                unstamped.setdefault(name, []).append((m.log_time_ns, deserialize(m.raw, m.msgtype)))
                continue
            if name in STATE_TOPICS + (T.OBJECT_POSES, T.REWARD_TERMS, T.POLICY_TWIST, T.TWIST_CMD):
                msg = deserialize(m.raw, m.msgtype)
                for f in ('position', 'velocity', 'effort'):     # JointState: views of the CDR
                    v = getattr(msg, f, None)                    # buffer are unaligned and slow
                    if isinstance(v, np.ndarray):
                        setattr(msg, f, np.array(v))
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                by_topic.setdefault(name, []).append((stamp, m.log_time_ns, msg))
    except BagError as exc:
        raise CorruptEpisodeError(str(exc)) from None
    for v in by_topic.values():
        v.sort(key=lambda x: x[0])
    for v in images.values():
        v.sort(key=lambda x: x[0])

    # ---- ticks ------------------------------------------------------------------------------------
    start = next((e for e in events if e.event == 'start'), None)
    end = next((e for e in events if e.event in ('end', 'abort')), None)
    start_ns = int(start.stamp_ns if start else meta.get('start_stamp_ns') or 0)
    end_ns = int(end.stamp_ns) if end else None
    commands = by_topic.get(T.POLICY_TWIST) or []
    cmd_source = T.POLICY_TWIST
    if not commands:
        commands, cmd_source = by_topic.get(T.TWIST_CMD) or [], T.TWIST_CMD
    ticks = align.tick_stamps([c[0] for c in commands], [s for s, _, _ in by_topic.get(T.JOINT_STATES, [])],
                              start_ns, end_ns)
    n_obs = int(ticks.size)
    if n_obs < 2:
        raise EmptyEpisodeError(f'{bag_dir}: no complete transition (ticks: {n_obs})')
    n = n_obs - 1
    slop = int(slop_s * align.NS)

    # ---- observations -----------------------------------------------------------------------------
    has_objects = T.OBJECT_POSES in by_topic
    obs_topics = STATE_TOPICS + ((T.OBJECT_POSES,) if has_objects else ())
    aligned = {}
    for name in obs_topics:
        rows = by_topic.get(name, [])
        aligned[name] = align.align_latest(np.asarray([r[0] for r in rows], np.int64), ticks, slop)
    frames: List[Optional[Dict[str, np.ndarray]]] = []
    obs_ok = np.ones(n_obs, bool)
    first_error = ''
    for k in range(n_obs):
        msgs = {name: by_topic[name][aligned[name][k]][2] for name in obs_topics if aligned[name][k] >= 0}
        try:
            frames.append(messages_to_frame(msgs, cameras=(), require_objects=has_objects))
        except (FrameError, ValueError) as exc:
            frames.append(None)
            obs_ok[k] = False
            first_error = first_error or f'tick {k} ({int(ticks[k])} ns): {exc}'
    if not obs_ok.any():
        raise EmptyEpisodeError(f'{bag_dir}: no tick has a complete state observation (first: {first_error}; '
                                f'messages per topic: { {t: len(by_topic.get(t, [])) for t in obs_topics} })')
    frames = _fill(frames)
    keys = list(frames[0])
    columns, col = {}, 0
    for key in keys:
        size = int(np.asarray(frames[0][key]).size)
        columns[key] = [col, col + size, list(np.asarray(frames[0][key]).shape)]
        col += size
    state = np.zeros((n_obs, col), np.float32)
    for k, fr in enumerate(frames):
        for key, (a, b, _) in columns.items():
            state[k, a:b] = np.asarray(fr[key], np.float32).reshape(-1)

    # ---- actions ----------------------------------------------------------------------------------
    actions = np.full((n, ACTION_DIM), np.nan, np.float32)
    action_ok = np.zeros(n, bool)
    cmd_by_stamp = {c[0]: c for c in commands}
    cmd_recv = np.asarray([cmd_by_stamp[int(t)][1] if int(t) in cmd_by_stamp else -1 for t in ticks[:-1]],
                          np.int64)
    have = cmd_recv >= 0
    grip_raw = T.POLICY_GRIPPER if cmd_source == T.POLICY_TWIST else T.GRIPPER_CMD
    gripper = _pair_by_receive_time(cmd_recv[have], [(t, _gripper_target(g)) for t, g in
                                                     unstamped.get(grip_raw, [])],
                                    int(0.5 * period_s * align.NS))
    gripper = {int(np.flatnonzero(have)[k]): v for k, v in gripper.items()}
    last_grip: Optional[float] = None
    for k in range(n):
        c = cmd_by_stamp.get(int(ticks[k]))
        # The gripper command has no header. The policy's step_info (stamped by the tick it acted on)
        # names the gripper it chose, so it is used first; pairing the unstamped command with the
        # nearest twist by receive time is the fallback (it can pick a neighbour tick under load).
        g = None
        info = step_info.get(int(ticks[k]))
        if cmd_source == T.POLICY_TWIST and info is not None and info.action is not None:
            g = GRIPPER_CLOSED_POSITION_RAD if info.action[4] > 0 else GRIPPER_OPEN_POSITION_RAD
        if g is None:
            g = gripper.get(k)
        g = last_grip if g is None else g
        if c is None:
            continue
        tw = c[2].twist
        actions[k] = from_command((tw.linear.x, tw.linear.y, tw.linear.z), tw.angular.z,
                                  0.0 if g is None else g)
        action_ok[k] = bool(np.all(np.isfinite(actions[k])))      # a NaN command is recorded, not used
        last_grip = g
    applied = np.array([float(np.ravel(fr['action/environment'])[7]) if ok else np.nan
                        for fr, ok in zip(frames, obs_ok)], np.float64)
    executed = _executed_actions(by_topic.get(T.TWIST_CMD, []), unstamped.get(T.GRIPPER_CMD, []), ticks,
                                 period_s, applied)

    # ---- rewards, intentions, validity ------------------------------------------------------------
    rewards = np.full((n, len(REWARD_TERMS)), np.nan, np.float32)
    rrows = by_topic.get(T.REWARD_TERMS, [])
    ridx = align.align_latest(np.asarray([r[0] for r in rrows], np.int64), ticks[1:], slop)
    for k, i in enumerate(ridx):
        if i >= 0:
            vals = dict(zip(rrows[i][2].name, rrows[i][2].position))
            rewards[k] = [vals.get(term, np.nan) for term in REWARD_TERMS]
    reward_ok = np.all(np.isfinite(rewards), axis=1)
    intentions = np.full(n, -1, np.int16)
    for k in range(n):
        info = step_info.get(int(ticks[k]))
        if info is not None and info.intention is not None:       # StepInfo checks the range
            intentions[k] = info.intention
    valid = obs_ok[:-1] & obs_ok[1:] & action_ok & reward_ok & align.interval_ok(ticks, period_s,
                                                                                  TICK_TOLERANCE)

    # ---- write ------------------------------------------------------------------------------------
    tmp = cache_dir.with_name(f'.tmp-{cache_dir.name}-{os.getpid()}-{time.time_ns()}')
    tmp.mkdir(parents=True)
    try:
        np.save(tmp / 'stamps_ns.npy', ticks)
        np.save(tmp / 'state.npy', state)
        cams = {}
        for cam, rows in sorted(images.items()):
            idx = align.align_latest(np.asarray([r[0] for r in rows], np.int64), ticks, slop)
            first = msg_to_image(deserialize(rows[0][1], 'sensor_msgs/msg/Image'))
            arr = np.lib.format.open_memmap(tmp / f'{cam}.npy', 'w+', np.uint8, (n_obs,) + first.shape)
            cam_ok = idx >= 0
            for k in range(n_obs):
                if cam_ok[k]:
                    try:
                        arr[k] = msg_to_image(deserialize(rows[idx[k]][1], 'sensor_msgs/msg/Image'))
                    except (BagError, ValueError):
                        cam_ok[k] = False
            _fill_array(arr, cam_ok)
            obs_ok &= cam_ok
            arr.flush()
            del arr
            cams[cam] = list((n_obs,) + first.shape)
        valid &= obs_ok[:-1] & obs_ok[1:]
        np.save(tmp / 'actions.npy', actions)
        np.save(tmp / 'executed_actions.npy', executed)
        np.save(tmp / 'reward_terms.npy', rewards)
        np.save(tmp / 'intentions.npy', intentions)
        np.save(tmp / 'obs_ok.npy', obs_ok)
        np.save(tmp / 'valid.npy', valid)
        layout = {'decoder': DECODER_VERSION, 'bag_digest': digest, 'bag': str(bag_dir), 'steps': n,
                  'columns': columns, 'cameras': cams, 'reward_terms': list(REWARD_TERMS),
                  'intentions': list(INTENTIONS), 'action_source': cmd_source,
                  'valid_transitions': int(valid.sum()), 'metadata': meta}
        (tmp / 'meta.json').write_text(json.dumps(layout, sort_keys=True, default=str))
        if not replace_current and _cache_holds(cache_dir, digest):
            shutil.rmtree(tmp, ignore_errors=True)      # a concurrent builder of this bag won: see _install
        else:
            _install(tmp, cache_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cache_dir


def _executed_actions(twists, grippers, ticks, period_s, applied: Optional[np.ndarray] = None) -> np.ndarray:
    """Executed command of tick k: the first safety-filter twist stamped in [t_k, t_{k+1}).

    Its gripper: the command the cell reports as applied during transition k (joint_command/applied
    at t_{k+1}, the benchmark's action/environment, stamped, so exact); where that is missing, the
    unstamped gripper command paired with the twist by receive time.
    """
    n = ticks.size - 1
    out = np.full((n, ACTION_DIM), np.nan, np.float32)
    if not twists:
        return out
    st = np.asarray([t[0] for t in twists], np.int64)
    first = np.searchsorted(st, ticks[:-1], side='left')
    recv = np.full(n, -1, np.int64)
    for k in range(n):
        i = first[k]
        if i < st.size and st[i] < ticks[k + 1]:
            recv[k] = twists[i][1]
    have = recv >= 0
    pairs = _pair_by_receive_time(recv[have], [(t, _gripper_target(g)) for t, g in grippers],
                                  int(0.5 * period_s * align.NS))
    pairs = {int(np.flatnonzero(have)[k]): v for k, v in pairs.items()}
    last = None
    for k in range(n):
        if recv[k] < 0:
            continue
        tw = twists[first[k]][2].twist
        if applied is not None and np.isfinite(applied[k + 1]):
            g = GRIPPER_CLOSED_POSITION_RAD if applied[k + 1] > 0 else GRIPPER_OPEN_POSITION_RAD
        else:
            g = pairs.get(k, last)
        out[k] = from_command((tw.linear.x, tw.linear.y, tw.linear.z), tw.angular.z, 0.0 if g is None else g)
        last = g
    return out


def _fill(frames: List[Optional[dict]]) -> List[dict]:
    """Replace missing frames by the nearest earlier one (the first later one at the start)."""
    first = next(f for f in frames if f is not None)
    out, last = [], first
    for f in frames:
        last = f if f is not None else last
        out.append(last)
    return out


def _fill_array(arr: np.ndarray, ok: np.ndarray) -> None:
    if ok.all() or not ok.any():
        return
    first = int(np.flatnonzero(ok)[0])
    arr[:first] = arr[first]
    for k in range(first + 1, arr.shape[0]):
        if not ok[k]:
            arr[k] = arr[k - 1]


def _install(tmp: Path, cache_dir: Path) -> None:
    """Atomically replace cache_dir by tmp (another process may build the same cache at once).

    build_cache does not call this when the cache is already current (a concurrent builder of the
    same bag won): replacing it would move it away under a reader that has opened its meta.json but
    not yet its arrays (seen as a training run skipping an episode: 'reward_terms.npy: No such file').
    """
    old = None
    if cache_dir.exists():
        old = cache_dir.with_name(f'.old-{cache_dir.name}-{os.getpid()}-{time.time_ns()}')
        try:
            os.rename(cache_dir, old)
        except FileNotFoundError:
            old = None
    try:
        os.rename(tmp, cache_dir)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)     # a concurrent builder won; its cache is as good
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _cache_holds(cache_dir: Path, digest: str) -> bool:
    """True when cache_dir was decoded by this decoder from a bag whose bag_digest is `digest`."""
    try:
        meta = json.loads((Path(cache_dir) / 'meta.json').read_text())
    except (OSError, ValueError):
        return False
    return meta.get('decoder') == DECODER_VERSION and meta.get('bag_digest') == digest


def cache_is_current(bag_dir: Path, cache_dir: Path) -> bool:
    return _cache_holds(cache_dir, bag_digest(bag_dir))
