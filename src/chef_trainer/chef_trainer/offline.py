"""Offline learning on recorded data (CHEF's Hyperparameter and Fine-tune stages), ROS-free.

    ckpt_path, metrics = train_offline(cfg, data, steps, run_dir)

`data` is any batch source with `.sample(batch_size, rng) -> batch dict` (the recorder's
TransitionSampler, a ReplayBuffer, a MixedSampler), or recorded episodes (see `make_sampler`).
`LearningRun` is the loop shared with the trainer node: resume from the run directory's newest
checkpoint, or start from `init_checkpoint` (weights only = fine-tuning), update, log metrics,
checkpoint every `checkpoint_every` updates and at the end.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from chef_trainer.checkpointing import CheckpointDir, load_learner_checkpoint
from chef_trainer.config import OFFLINE_ALGORITHMS, LearnerConfig, TrainerConfig
from chef_trainer.learners import Learner, make_learner, scalar_metrics
from chef_trainer.metrics import MetricsWriter

PathLike = Union[str, Path]


def learner_config(cfg: Union[TrainerConfig, LearnerConfig]) -> LearnerConfig:
    return cfg.learner if isinstance(cfg, TrainerConfig) else cfg


def make_sampler(data: Any, cfg: LearnerConfig):
    """A batch source for `cfg` from `data`.

    * anything with `.sample(batch_size, rng)`: used as is;
    * a chef_recorder.dataset.Dataset, or a (Dataset, records) pair: a TransitionSampler over the
      given records (all records of the catalog when none are given) with the learner's
      observation keys, n-step and discount.
    """
    if hasattr(data, 'sample'):
        return data
    from chef_recorder.dataset import Dataset, TransitionSampler    # recorder's reader
    if isinstance(data, Dataset):
        ds, records = data, None
    elif isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Dataset):
        ds, records = data
    else:
        raise TypeError('data must be a batch sampler, a chef_recorder Dataset or (Dataset, records)')
    if records is None:
        records = ds.training_records()
    records = select_episodes(records, cfg)
    keys = tuple(cfg.network.input_keys) + tuple(cfg.network.image_keys)
    return TransitionSampler(ds, list(records), keys, n_step=cfg.n_step, discount=cfg.discount,
                             action_horizon=cfg.network.action_horizon)


def select_episodes(records, cfg: LearnerConfig) -> list:
    """The records the learner trains on (`cfg.train_on`); a clear error when none is left."""
    records = list(records)
    if cfg.train_on == 'successful':
        kept = [r for r in records if bool(r.metadata.get('success'))]
        if not kept:
            raise ValueError(f'learner.train_on=successful: none of the {len(records)} episode(s) succeeded')
        return kept
    return records


NORMALISATION_SAMPLES = 8192   # transitions whose observations set the input standardisation


class LearningRun:
    """One learner bound to a run directory: resume/fine-tune, update loop, metrics, checkpoints."""

    def __init__(self, cfg: Union[TrainerConfig, LearnerConfig], run_dir: PathLike, sampler=None,
                 init_checkpoint: Optional[PathLike] = None, resume: bool = True,
                 checkpoint_every: int = 0, keep: int = 3, device: Optional[str] = None):
        self.cfg = learner_config(cfg)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sampler = sampler
        if self.cfg.network.action_horizon > 1 and hasattr(sampler, 'set_action_horizon'):
            sampler.set_action_horizon(self.cfg.network.action_horizon)    # batches carry the chunks
        self.learner: Learner = make_learner(self.cfg, device)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.ckpts = CheckpointDir(self.run_dir, keep=keep)
        self.checkpoint_every = int(checkpoint_every)
        self.metrics = MetricsWriter(self.run_dir)
        self.lock = threading.Lock()          # held during an update; samplers may be fed meanwhile
        self.started_from = 'scratch'
        self.last_checkpoint: Optional[Dict[str, Any]] = None
        self.extra: Dict[str, Any] = {}       # extra of the checkpoint resumed from
        self.extra_provider: Optional[Callable[[], Dict[str, Any]]] = None   # adds to every checkpoint
        latest = self.ckpts.latest() if resume else None
        if latest is not None:
            self.extra = load_learner_checkpoint(latest['path'], self.learner, self.rng)
            self.started_from = f'resumed:{latest["path"]}'
            self.last_checkpoint = latest
        elif init_checkpoint:
            load_learner_checkpoint(init_checkpoint, self.learner, weights_only=True)
            self.started_from = f'init:{init_checkpoint}'
        # rows logged after the step this run starts from (a run killed after its last checkpoint,
        # or before its first) are redone: drop them, so metrics.csv never holds a step twice
        self.metrics.truncate_after(self.learner.steps)
        self.update_time_s = 0.0
        self.sample_time_s = 0.0

    @property
    def steps(self) -> int:
        return self.learner.steps

    def update(self, batch=None) -> Dict[str, Any]:
        """One update (on `batch`, or one drawn from the sampler); logs every `log_every` updates."""
        t0 = time.perf_counter()
        if (self.cfg.network.normalize_state and not self.learner.state_statistics_ready
                and self.sampler is not None):      # once, from scratch: stats of the training data
            self.learner.fit_state_statistics(self.sampler.sample(NORMALISATION_SAMPLES, self.rng))
        if batch is None:
            batch = self.sampler.sample(self.cfg.batch_size, self.rng)
        t1 = time.perf_counter()
        with self.lock:
            out = self.learner.update(batch)
        t2 = time.perf_counter()
        self.sample_time_s += t1 - t0
        self.update_time_s += t2 - t1
        if self.learner.steps % self.cfg.log_every == 0:
            m = scalar_metrics(out, self.cfg.intentions)
            self.metrics.write(self.learner.steps, m)
        if self.checkpoint_every and self.learner.steps % self.checkpoint_every == 0:
            self.checkpoint()
        return out

    def checkpoint(self, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        ext = {k: v for k, v in self.extra.items() if k not in ('trainer', 'numpy_rng', 'sha256',
                                                                 'learner_config')}
        if self.extra_provider is not None:
            ext.update(self.extra_provider())
        ext.update(extra or {})
        with self.lock:
            self.last_checkpoint = self.ckpts.save(self.learner, self.rng, ext)
        return self.last_checkpoint

    def run(self, total_steps: int, progress: bool = True, stop: Optional[threading.Event] = None
            ) -> Dict[str, Any]:
        """Update until the learner's step count reaches `total_steps` (resumed runs continue)."""
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total_steps, initial=self.steps, desc=f'{self.cfg.algorithm} updates',
                       unit='upd', dynamic_ncols=True)
        try:
            while self.steps < total_steps and not (stop is not None and stop.is_set()):
                self.update()
                if bar is not None:
                    bar.update(1)
                    if self.steps % max(1, self.cfg.log_every) == 0 and self.metrics.last:
                        last = self.metrics.last
                        shown = {k: f'{last[k]:.3g}' for k in ('critic_loss', 'actor_loss', 'bc_loss',
                                                               'policy_loss', 'q_mean') if k in last}
                        bar.set_postfix(shown, refresh=False)
        finally:
            if bar is not None:
                bar.close()
        return self.finish()

    def finish(self, save: bool = True) -> Dict[str, Any]:
        """Final checkpoint (unless `save` is False and the current step is already saved) and
        summary.json."""
        info = self.last_checkpoint
        if save or info is None or info.get('step') != self.steps:
            info = self.checkpoint()
        n = max(1, self.steps)
        summary = self.metrics.summary(
            algorithm=self.cfg.algorithm, steps=self.steps, checkpoint=info['path'],
            sha256=info['sha256'], started_from=self.started_from,
            update_s_per_step=self.update_time_s / n, sample_s_per_step=self.sample_time_s / n)
        self.metrics.write_summary(summary)
        return summary

    def close(self) -> None:
        self.metrics.close()


def train_offline(cfg: Union[TrainerConfig, LearnerConfig], data: Any, steps: int,
                  run_dir: PathLike = 'runs/offline', init_checkpoint: Optional[PathLike] = None,
                  progress: bool = True, resume: bool = True, checkpoint_every: int = 0,
                  device: Optional[str] = None, stop: Optional[threading.Event] = None
                  ) -> Tuple[str, Dict[str, Any]]:
    """Train an offline learner (cfg.algorithm 'crr' or 'bc') for `steps` updates on `data`.

    Returns (path of the final checkpoint, summary metrics). The run directory gets metrics.csv,
    summary.json, checkpoints/ and latest.json; rerunning with the same run_dir resumes (the step
    count continues, it does not restart). `init_checkpoint` = fine-tune: start from its networks.
    """
    lcfg = learner_config(cfg)
    if lcfg.algorithm not in OFFLINE_ALGORITHMS:
        raise ValueError(f'train_offline trains {"/".join(OFFLINE_ALGORITHMS)}, not {lcfg.algorithm!r}')
    run = LearningRun(lcfg, run_dir, make_sampler(data, lcfg), init_checkpoint=init_checkpoint,
                      resume=resume, checkpoint_every=checkpoint_every, device=device)
    try:
        summary = run.run(steps, progress=progress, stop=stop)
    finally:
        run.close()
    return summary['checkpoint'], summary
