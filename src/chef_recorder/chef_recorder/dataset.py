"""The learners' view of the recorded data (ROS-free, no torch).

    from chef_recorder.dataset import Dataset, TransitionSampler
    ds = Dataset('data')
    records = ds.query(stage='collect', source='sim')           # complete episodes by default
    ep = ds.load(records[0])                                      # EpisodeData, arrays are mmapped
    sampler = TransitionSampler(ds, records, keys=['sawyer/joints/angle', 'basket_front_left/pixels'],
                                n_step=3, discount=0.99, image_size=64)
    batch = sampler.sample(256, np.random.default_rng(0))

Each bag is decoded once into a per-episode .npy cache (decode.py) opened with mmap, so a data set
larger than RAM streams from the page cache. Observations are stacked exactly like
chef_contract.obs.FrameStacker (3 state frames, 2 for action/environment, newest first, first-frame
padding); images are not stacked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from chef_contract.spec import CAMERA_NAMES, REWARD_TERMS, STATE_OBSERVATIONS, image_key
from chef_recorder.bagio import BagError
from chef_recorder.catalog import Catalog
from chef_recorder.decode import DECODER_VERSION, build_cache, cache_is_current
from chef_recorder.layout import DataLayout

log = logging.getLogger('chef_recorder.dataset')
_STATE = {k.name: k for k in STATE_OBSERVATIONS}
_CAMERA_OF_KEY = {image_key(c): c for c in CAMERA_NAMES}


@dataclass
class EpisodeRecord:
    """One catalogued episode: `id` (its directory name, = episode id), bag `path`, `steps`
    (recorded transitions) and the full `metadata` dict (docs/data.md lists the fields)."""

    id: str
    path: Path
    steps: int
    metadata: Dict[str, Any] = field(repr=False)
    cell: str = ''

    @property
    def episode_id(self) -> str:
        return self.metadata.get('episode_id') or self.id


class EpisodeData:
    """One decoded episode. Arrays are read-only memory maps of the cache.

    frames[key]: [T+1, *raw_shape] (unstacked, benchmark units, images uint8 HxWxC);
    actions: float32[T, 5] (behaviour policy command); executed_actions: float32[T, 5] (safety filter
    output, NaN if not recorded); reward_terms: float32[T, len(REWARD_TERMS)] (reward of transition
    k, i.e. reward/terms at t_{k+1}); intentions: int16[T]; stamps_ns: int64[T+1]; obs_ok: bool[T+1];
    valid: bool[T]; metadata: the episode metadata.
    """

    def __init__(self, record: EpisodeRecord, cache_dir: Path):
        self.record = record
        self.cache_dir = Path(cache_dir)
        self.layout = json.loads((self.cache_dir / 'meta.json').read_text())
        self.metadata: Dict[str, Any] = self.layout['metadata']
        # plain ndarray views of read-only memory maps: pages come from the page cache on demand
        load = lambda name: np.asarray(np.load(self.cache_dir / f'{name}.npy', mmap_mode='r'))  # noqa: E731
        self.stamps_ns = load('stamps_ns')
        self.state = load('state')
        self.actions = load('actions')
        self.executed_actions = load('executed_actions')
        self.reward_terms = load('reward_terms')
        self.intentions = load('intentions')
        self.obs_ok = load('obs_ok')
        self.valid = load('valid')
        self.columns = {k: (a, b, tuple(shape)) for k, (a, b, shape) in self.layout['columns'].items()}
        self.frames: Dict[str, np.ndarray] = {}
        for key, (a, b, shape) in self.columns.items():
            self.frames[key] = self.state[:, a:b].reshape((self.state.shape[0],) + shape)
        self.images: Dict[str, np.ndarray] = {}
        for cam in self.layout['cameras']:
            self.images[cam] = load(cam)
            self.frames[image_key(cam)] = self.images[cam]

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    def __repr__(self) -> str:
        return f'EpisodeData({self.id!r}, steps={self.steps}, valid={int(self.valid.sum())})'


class Dataset:
    """All episodes under `data_dir` (catalog + bags), with a decoded cache for the learners.

    `cache_dir` defaults to <data_dir>/cache; point it elsewhere for a read-only data set.
    """

    def __init__(self, data_dir: Union[str, Path], cache_dir: Union[str, Path, None] = None,
                 sync: bool = True):
        self.layout = DataLayout(data_dir)
        if not self.layout.root.is_dir():
            raise FileNotFoundError(f'no data directory {self.layout.root}')
        self.catalog = Catalog(self.layout)
        self.cache_root = Path(cache_dir) / f'v{DECODER_VERSION}' if cache_dir is not None \
            else self.layout.cache_dir(DECODER_VERSION)
        if sync:
            self.refresh()

    def refresh(self) -> None:
        """Pick up bags published since (by recorders that run now) or missing from the catalog."""
        self.catalog.sync()

    def query(self, complete: Optional[bool] = True, refresh: bool = True, **filters) -> List[EpisodeRecord]:
        """Episodes whose catalog fields match: source, stage, iteration, triplet, cell, policy_id,
        success, status, rate_ok, ... or any metadata field; a list value means 'one of'.
        `complete=None` includes aborted, superseded and recovered episodes."""
        if refresh:
            self.refresh()
        if complete is not None:
            filters['complete'] = complete
        return [self._record(r) for r in self.catalog.rows(**filters)]

    def training_records(self, **filters) -> List[EpisodeRecord]:
        """Every episode the learners train on: complete or not (unless `filters` set `complete`).
        CHEF never throws data away; TransitionSampler keeps each valid transition (a lost tick, a
        missing observation or a NaN command only invalidates the transitions around it) and skips
        bags that do not decode."""
        return self.query(**{'complete': None, **filters})

    def get(self, id_or_path: str) -> EpisodeRecord:
        return self._record(self.catalog.get(id_or_path))

    def _record(self, row: Dict[str, Any]) -> EpisodeRecord:
        meta = json.loads(row['metadata'])
        return EpisodeRecord(id=row['id'], path=self.layout.root / row['path'],
                             steps=int(meta.get('steps_recorded') or row['steps'] or 0), metadata=meta,
                             cell=row['cell'])

    def cache_path(self, record: EpisodeRecord) -> Path:
        return self.cache_root / record.path.parent.name / record.path.name

    def load(self, record_or_id: Union[EpisodeRecord, str], rebuild: bool = False) -> EpisodeData:
        """Decode (once) and open an episode. Raises CorruptEpisodeError / EmptyEpisodeError /
        BagError with the bag's path and the reason when the bag is damaged."""
        record = record_or_id if isinstance(record_or_id, EpisodeRecord) else self.get(record_or_id)
        if not record.path.is_dir():
            raise BagError(f'{record.path}: bag directory is gone (run `chef data ls` to resync)')
        cache = self.cache_path(record)
        if rebuild or not cache_is_current(record.path, cache):
            build_cache(record.path, cache, replace_current=rebuild)
        return EpisodeData(record, cache)

    def __len__(self) -> int:
        return len(self.catalog)


# --------------------------------------------------------------------------------------------------
class TransitionSampler:
    """Uniform sampling of (stacked obs_t, a_t, n-step discounted reward terms, obs_{t+n}, gamma^n).

    keys: observation keys (state keys of spec.STATE_OBSERVATIONS and `<camera>/pixels`).
    Episodes end by time limit, so every transition bootstraps: discount = gamma^m with m = n_step,
    shortened at the episode's end or before an invalid transition (a lost tick, a missing
    observation). image_size resizes images (INTER_AREA) to image_size x image_size.
    Episodes that fail to decode, or lack a requested key, are skipped with a warning (`skipped`).
    """

    def __init__(self, dataset: Dataset, records: Iterable[EpisodeRecord], keys: Sequence[str],
                 n_step: int = 1, discount: float = 0.99, image_size: Optional[int] = None,
                 on_error: str = 'skip', progress: bool = True, action_horizon: int = 1):
        if n_step < 1:
            raise ValueError('n_step must be >= 1')
        if action_horizon < 1:
            raise ValueError('action_horizon must be >= 1')
        if on_error not in ('skip', 'raise'):
            raise ValueError("on_error must be 'skip' or 'raise'")
        unknown = [k for k in keys if k not in _STATE and k not in _CAMERA_OF_KEY]
        if unknown:
            raise KeyError(f'unknown observation keys {unknown}')
        self.dataset = dataset
        self.keys = tuple(keys)
        self.state_keys = tuple(k for k in self.keys if k in _STATE)
        self.image_keys = tuple(k for k in self.keys if k in _CAMERA_OF_KEY)
        self.n_step = int(n_step)
        self.discount = float(discount)
        self.image_size = image_size
        self.on_error = on_error
        self.progress = progress
        self.action_horizon = int(action_horizon)
        self.episodes: List[EpisodeData] = []
        self.skipped: Dict[str, str] = {}
        self._ids: set = set()
        self._depth = max([_STATE[k].stack for k in self.state_keys] + [1])
        self._slices: Dict[str, slice] = {}            # key -> columns of the gathered state rows
        col = 0
        for k in self.state_keys:
            size = int(np.prod(_STATE[k].raw_shape))
            self._slices[k] = slice(col, col + size)
            col += size
        self._width = col
        self._cols: List[np.ndarray] = []              # per episode: its state columns of the keys
        # Stacked state rows of every tick of every episode, built once per episode (state inputs
        # are small: 100 episodes x 401 ticks x 292 floats = 47 MB), so a batch is one fancy index
        # instead of a Python loop over its rows (the per-row gather capped learners at ~30 upd/s).
        self._rows: List[np.ndarray] = []              # per episode [T+1, depth, width] float32
        self._row_base = np.zeros(0, np.int64)         # first row of each episode in _table
        self._table: Optional[np.ndarray] = None       # concatenation of _rows (lazy)
        self._g: Dict[str, np.ndarray] = {
            'ep': np.zeros(0, np.int32), 't': np.zeros(0, np.int32), 'm': np.zeros(0, np.int16),
            'rewards': np.zeros((0, len(REWARD_TERMS)), np.float32),
            'action': np.zeros((0, 5), np.float32), 'intention': np.zeros(0, np.int16)}
        if self.action_horizon > 1:
            self._g.update(self._empty_chunks())
        self.add_episodes(records)

    def __len__(self) -> int:
        return int(self._g['t'].size)

    def add_episodes(self, records: Iterable[EpisodeRecord]) -> int:
        """Add episodes (a live learner calls this with newly recorded ones); returns how many."""
        records = [r for r in records if r.id not in self._ids]
        it = records
        if self.progress and len(records) > 3:
            from tqdm import tqdm
            it = tqdm(records, desc='decoding episodes', unit='ep')
        new = {k: [v] for k, v in self._g.items()}
        added = 0
        for rec in it:
            try:
                ep = self.dataset.load(rec)
            except Exception as exc:  # noqa: BLE001 - one bag that does not decode never stops the data set
                if self.on_error == 'raise':
                    raise
                self.skipped[rec.id] = str(exc)
                log.warning('skipping episode %s: %s', rec.id, exc)
                continue
            missing = [k for k in self.state_keys if k not in ep.columns] + \
                      [k for k in self.image_keys if _CAMERA_OF_KEY[k] not in ep.images]
            if missing:
                msg = f'lacks observation keys {missing}'
                if self.on_error == 'raise':
                    raise KeyError(f'episode {rec.id} {msg}')
                self.skipped[rec.id] = msg
                log.warning('skipping episode %s: %s', rec.id, msg)
                continue
            index = len(self.episodes)
            self.episodes.append(ep)
            self._cols.append(np.concatenate(
                [np.arange(ep.columns[k][0], ep.columns[k][1]) for k in self.state_keys]
                or [np.zeros(0, np.int64)]))
            self._ids.add(rec.id)
            self._rows.append(self._stacked_rows(ep, self._cols[-1]))
            t, m, rew = self._nstep(ep)
            new['ep'].append(np.full(t.size, index, np.int32))
            new['t'].append(t.astype(np.int32))
            new['m'].append(m.astype(np.int16))
            new['rewards'].append(rew)
            new['action'].append(np.asarray(ep.actions[t], np.float32))
            new['intention'].append(np.asarray(ep.intentions[t], np.int16))
            if self.action_horizon > 1:
                chunk, mask = self._action_chunks(ep, t)
                new['action_chunk'].append(chunk)
                new['chunk_mask'].append(mask)
            added += 1
        self._g = {k: np.concatenate(v) for k, v in new.items()}
        self._table = None
        self._row_base = np.cumsum([0] + [r.shape[0] for r in self._rows])[:-1].astype(np.int64)
        return added

    def set_action_horizon(self, horizon: int) -> None:
        """Make batches carry the next `horizon` logged commands of every transition (action
        chunking); a sampler that already holds longer chunks keeps them (a learner reads the first
        `horizon`)."""
        horizon = int(horizon)
        if horizon <= self.action_horizon:
            return
        self.action_horizon = horizon
        empty = self._empty_chunks()
        chunks, masks = [empty['action_chunk']], [empty['chunk_mask']]
        # transitions are stored episode by episode, in order: split the ticks by episode once
        counts = np.bincount(self._g['ep'], minlength=len(self.episodes))
        for ep, t in zip(self.episodes, np.split(self._g['t'].astype(np.int64), np.cumsum(counts)[:-1])):
            c, m = self._action_chunks(ep, t)
            chunks.append(c); masks.append(m)
        self._g['action_chunk'] = np.concatenate(chunks)
        self._g['chunk_mask'] = np.concatenate(masks)

    def _empty_chunks(self) -> Dict[str, np.ndarray]:
        return {'action_chunk': np.zeros((0, self.action_horizon, 5), np.float32),
                'chunk_mask': np.zeros((0, self.action_horizon), bool)}

    def _action_chunks(self, ep: EpisodeData, t: np.ndarray):
        """[len(t), H, 5] commands a_t .. a_{t+H-1} and [len(t), H] mask: True while every tick
        from t up to that one is valid (a chunk never spans a lost tick or the episode's end)."""
        n = len(ep.valid)
        run = _valid_runs(ep.valid)
        h = np.arange(self.action_horizon)
        idx = np.minimum(t[:, None] + h[None, :], n - 1)
        actions = np.asarray(ep.actions, np.float32)
        return actions[idx], h[None, :] < run[t][:, None]

    def episode_states(self, index: int) -> Dict[str, np.ndarray]:
        """Stacked state inputs of every tick of episode `index`: {key: [T+1, *stacked shape]}."""
        rows = self._rows[index]
        return {k: rows[:, :_STATE[k].stack, self._slices[k]].reshape((rows.shape[0],) + _STATE[k].shape)
                for k in self.state_keys}

    def _stacked_rows(self, ep: EpisodeData, cols: np.ndarray) -> np.ndarray:
        """[T+1, depth, width]: the stacked state inputs of every tick (newest first, the first
        frame repeated before tick 0, as FrameStacker pads)."""
        n = ep.state.shape[0]
        lag = np.arange(self._depth)
        ticks = np.maximum(np.arange(n)[:, None] - lag[None, :], 0)         # [T+1, depth]
        state = np.asarray(ep.state[:, cols], np.float32)                  # [T+1, width]
        return state[ticks]

    def _nstep(self, ep: EpisodeData):
        n = len(ep.valid)
        run = _valid_runs(ep.valid)
        m = np.minimum(run[:n], self.n_step)
        t = np.flatnonzero(m >= 1)
        m = m[t]
        r = np.asarray(ep.reward_terms, np.float32)
        out = np.zeros((t.size, r.shape[1]), np.float32)
        for i in range(self.n_step):
            use = m > i
            out[use] += (self.discount ** i) * r[t[use] + i]
        return t, m, out

    def sample(self, batch_size: int, rng: np.random.Generator) -> Dict[str, Any]:
        """A batch: obs/next_obs {key: [B, *stacked shape]}, action [B,5], rewards [B, n_terms]
        (n-step discounted sums per term, spec.REWARD_TERMS order), discount [B] (= gamma^n), and
        n [B], intention [B], episode [B] (index into .episodes), t [B]; with action_horizon H > 1
        also action_chunk [B, H, 5] (a_t .. a_{t+H-1}) and chunk_mask [B, H] (which of them exist)."""
        if len(self) == 0:
            raise ValueError('no sampleable transition (no episode, or none valid)')
        idx = rng.integers(0, len(self), size=batch_size)
        ep_i, t, m = self._g['ep'][idx], self._g['t'][idx], self._g['m'][idx].astype(np.int64)
        obs = self._gather(ep_i, t)
        next_obs = self._gather(ep_i, t + m)
        batch = {'obs': obs, 'action': self._g['action'][idx], 'rewards': self._g['rewards'][idx],
                 'next_obs': next_obs, 'discount': (self.discount ** m).astype(np.float32),
                 'n': m.astype(np.int32), 'intention': self._g['intention'][idx], 'episode': ep_i,
                 't': t}
        if self.action_horizon > 1:
            batch['action_chunk'] = self._g['action_chunk'][idx]
            batch['chunk_mask'] = self._g['chunk_mask'][idx]
        return batch

    def _gather(self, ep_i: np.ndarray, t: np.ndarray) -> Dict[str, np.ndarray]:
        b = ep_i.size
        out: Dict[str, np.ndarray] = {}
        if self.state_keys:
            if self._table is None:
                self._table = np.concatenate(self._rows) if self._rows else \
                    np.zeros((0, self._depth, self._width), np.float32)
            rows = self._table[self._row_base[ep_i] + t]
            for key in self.state_keys:
                spec = _STATE[key]
                out[key] = rows[:, :spec.stack, self._slices[key]].reshape((b,) + spec.shape)
        for key in self.image_keys:
            cam = _CAMERA_OF_KEY[key]
            shapes = {self.episodes[e].images[cam].shape[1:] for e in np.unique(ep_i)}
            if len(shapes) == 1:
                raw = np.empty((b,) + shapes.pop(), np.uint8)
                for i in range(b):
                    raw[i] = self.episodes[ep_i[i]].images[cam][t[i]]
                out[key] = raw if self.image_size is None else resize_batch(raw, self.image_size)
            else:                                            # episodes recorded at different sizes
                size = self.image_size or max(s[0] for s in shapes)
                out[key] = np.stack([resize_batch(self.episodes[ep_i[i]].images[cam][t[i]][None], size)[0]
                                     for i in range(b)])
        return out


def _valid_runs(valid) -> np.ndarray:
    """[T + 1]: how many consecutive valid transitions start at each tick (0 at T)."""
    valid = np.asarray(valid, bool)
    run = np.zeros(valid.size + 1, np.int64)
    for t in range(valid.size - 1, -1, -1):
        run[t] = run[t + 1] + 1 if valid[t] else 0
    return run


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """[B, H, W, C] uint8 -> [B, size, size, C], OpenCV INTER_AREA (area averaging)."""
    b, h, w, c = images.shape
    if h == size and w == size:
        return images
    import cv2
    out = np.empty((b, size, size, c), np.uint8)
    for i in range(b):
        out[i] = cv2.resize(images[i], (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, c)
    return out
