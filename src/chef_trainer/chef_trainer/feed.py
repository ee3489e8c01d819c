"""Where the trainer node's batches come from (ROS-free): every recorded episode plus a live replay.

`DataFeed` watches the recorder's catalog (chef_recorder.dataset.Dataset). Each `poll()` picks up
episodes published since the last poll (the recorder publishes every bag atomically at episode end,
so an episode is either complete in the catalog or absent) and adds them to

  * `all_data`: a TransitionSampler over every matching episode, old and new (CHEF: never discard
    data), and
  * `live`: an in-memory ReplayBuffer of the episodes recorded while this learner runs (the running
    cells' fresh data), stacked exactly as the policy saw them (chef_contract.obs.FrameStacker).

Batches mix the two in a fixed proportion (`live_fraction`, the 'replay across experiments' recipe);
with live_fraction 0 the live replay is not kept at all (plain offline learning on a growing set).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from chef_contract.obs import FrameStacker
from chef_contract.spec import STATE_OBSERVATIONS
from chef_trainer.replay import MixedSampler, ReplayBuffer, ReplayError

log = logging.getLogger('chef_trainer.feed')
_STATE = {k.name for k in STATE_OBSERVATIONS}


def stacked_episode(frames: Mapping[str, np.ndarray], keys: Sequence[str],
                    image_size: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Unstacked episode frames {key: [T+1, *raw]} -> stacked {key: [T+1, *stacked shape]}."""
    state_keys = [k for k in keys if k in _STATE]
    out: Dict[str, np.ndarray] = {}
    if state_keys:
        stacker = FrameStacker(state_keys)
        n = len(frames[state_keys[0]])
        rows = [stacker.push({k: frames[k][t] for k in state_keys}) for t in range(n)]
        out = {k: np.stack([r[k] for r in rows]) for k in state_keys}
    for k in keys:
        if k not in _STATE:
            imgs = np.asarray(frames[k])
            if image_size is not None and imgs.shape[1] != image_size:
                from chef_recorder.dataset import resize_batch
                imgs = resize_batch(imgs, image_size)
            out[k] = imgs
    return out


class DataFeed:
    """Catalog watcher feeding a TransitionSampler (all data) and a live ReplayBuffer."""

    def __init__(self, data_dir: str, keys: Sequence[str], n_step: int, discount: float,
                 live_fraction: float = 0.0, live_capacity: int = 200_000,
                 filters: Optional[Mapping[str, Any]] = None, image_size: Optional[int] = None,
                 include_existing_in_live: bool = False):
        from chef_recorder.dataset import Dataset, TransitionSampler
        from pathlib import Path
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.dataset = Dataset(data_dir)
        self.keys = tuple(keys)
        self.filters = dict(filters or {})
        self.image_size = image_size
        self.live_fraction = float(live_fraction)
        self.n_step, self.discount = n_step, discount
        self.all_data = TransitionSampler(self.dataset, [], self.keys, n_step=n_step, discount=discount,
                                          image_size=image_size, progress=False)
        self.live: Optional[ReplayBuffer] = None
        self.live_capacity = int(live_capacity)
        self._seen: set = set()
        self.live_episodes = 0
        first = self.dataset.training_records(**self.filters)
        self.all_data.add_episodes(first)
        self._seen.update(r.id for r in first)
        if include_existing_in_live:
            for rec in first:
                self._add_live(rec)
        self.sampler = MixedSampler([self.all_data, _LiveView(self)],
                                    [1.0 - self.live_fraction, self.live_fraction]) \
            if self.live_fraction > 0 else self.all_data

    @property
    def episodes(self) -> int:
        return len(self._seen)

    def __len__(self) -> int:
        return len(self.all_data)

    def poll(self) -> int:
        """Pick up newly published episodes; returns how many were added."""
        new = [r for r in self.dataset.training_records(**self.filters) if r.id not in self._seen]
        if not new:
            return 0
        added = self.all_data.add_episodes(new)
        for rec in new:
            self._seen.add(rec.id)
            if self.live_fraction > 0 and rec.id not in self.all_data.skipped:
                self._add_live(rec)
        return added

    def _add_live(self, rec) -> None:
        try:
            ep = self.dataset.load(rec)
            frames = stacked_episode(ep.frames, self.keys, self.image_size)
            valid = np.asarray(ep.valid, bool)
            t_end = int(np.argmin(valid)) if not valid.all() else len(valid)   # up to the first gap
            if t_end < 1:
                return
            if self.live is None:
                spec = {k: frames[k].shape[1:] for k in self.keys}
                dtypes = {k: frames[k].dtype for k in self.keys}
                self.live = ReplayBuffer(self.live_capacity, spec, self.n_step, self.discount,
                                         obs_dtypes=dtypes)
            self.live.add_episode({k: frames[k][:t_end + 1] for k in self.keys},
                                  np.asarray(ep.actions[:t_end], np.float32),
                                  np.asarray(ep.reward_terms[:t_end], np.float32))
            self.live_episodes += 1
        except (ReplayError, KeyError, ValueError, OSError) as exc:
            log.warning('episode %s not added to the live replay: %s', rec.id, exc)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Dict[str, Any]:
        return self.sampler.sample(batch_size, rng)

    def set_action_horizon(self, horizon: int) -> None:
        """Batches with the next `horizon` commands (an action-chunking learner): all data only;
        the live replay keeps single commands, so the two do not mix."""
        if horizon > 1 and self.live_fraction > 0:
            raise ValueError(f'network.action_horizon={horizon} needs online.live_fraction 0 (the live '
                             'replay holds one command per transition)')
        self.all_data.set_action_horizon(horizon)


class _LiveView:
    """The live replay as a sampler that reports empty until the first live episode arrives."""

    def __init__(self, feed: DataFeed):
        self.feed = feed

    def __len__(self) -> int:
        return 0 if self.feed.live is None else len(self.feed.live)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Dict[str, Any]:
        return self.feed.live.sample(batch_size, rng)
