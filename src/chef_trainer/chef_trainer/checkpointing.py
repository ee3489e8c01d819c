"""Learner checkpoints on top of chef_policy.checkpoint, plus the run directory's `latest.json`.

One file per checkpoint (chef_policy format, loaded with weights_only=True):
    modules: actor, critic, target_actor, target_critic   (the policy node reads 'actor')
    extra:   trainer = learner.resume_state() (optimisers, duals, update count, torch RNG),
             numpy_rng = the batch sampler's bit-generator state (JSON), learner_config (JSON),
             plus whatever the caller adds (e.g. env steps of an online run)
A run directory holds checkpoints/step_<N>.pt and latest.json = {path, sha256, step}, replaced
atomically after the checkpoint file itself is complete, so a learner killed at any instant
resumes from the newest complete checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from chef_contract.config import to_dict
from chef_policy.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

PathLike = Union[str, Path]
LATEST = 'latest.json'


def rng_state_json(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def restore_rng(rng: np.random.Generator, state_json: str) -> None:
    rng.bit_generator.state = json.loads(state_json)


def save_learner_checkpoint(path: PathLike, learner, rng: Optional[np.random.Generator] = None,
                            extra: Optional[Mapping[str, Any]] = None) -> str:
    """Write the learner (networks + resume state) to `path`; returns the file's sha256."""
    ext: Dict[str, Any] = {
        'trainer': learner.resume_state(),
        'learner_config': json.dumps(to_dict(learner.config), sort_keys=True),
    }
    if rng is not None:
        ext['numpy_rng'] = rng_state_json(rng)
    ext.update(dict(extra or {}))
    modules = {k: m.state_dict() for k, m in learner.modules().items()}
    return save_checkpoint(path, modules, learner.config.network, ext)


def load_learner_checkpoint(path: PathLike, learner, rng: Optional[np.random.Generator] = None,
                            weights_only: bool = False, expected_sha256: Optional[str] = None
                            ) -> Dict[str, Any]:
    """Load a checkpoint into `learner` (and the sampler `rng`); returns its `extra` dict.

    weights_only=True loads the networks only (fine-tuning from another run or from a BC policy);
    otherwise optimisers, duals, update count and RNG states are restored too (resume).
    """
    state, config, sha = load_checkpoint(path, expected_sha256, map_location=learner.device)
    mine = learner.config.network.to_dict()
    diff = {k: (v, mine.get(k)) for k, v in config.to_dict().items() if mine.get(k) != v}
    shorter_chunks = (weights_only and set(diff) == {'action_horizon'}
                      and diff['action_horizon'][1] < diff['action_horizon'][0])
    if diff and not shorter_chunks:   # (an actor with shorter chunks starts from the first steps)
        raise CheckpointError(f'{path}: network config differs from the learner\'s: {diff}')
    learner.load_modules(state['modules'])
    extra = dict(state['extra'])
    if not weights_only:
        if 'trainer' not in extra:
            raise CheckpointError(f'{path}: no trainer resume state (a policy-only checkpoint?)')
        learner.load_resume_state(extra['trainer'])
        if rng is not None and 'numpy_rng' in extra:
            restore_rng(rng, extra['numpy_rng'])
    extra['sha256'] = sha
    return extra


class CheckpointDir:
    """checkpoints/step_<N>.pt + latest.json in a run directory; keeps the newest `keep` files."""

    def __init__(self, run_dir: PathLike, keep: int = 3):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / 'checkpoints'
        self.keep = max(1, int(keep))

    def save(self, learner, rng: Optional[np.random.Generator] = None,
             extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f'step_{learner.steps:09d}.pt'
        sha = save_learner_checkpoint(path, learner, rng, extra)
        info = {'path': str(path.resolve()), 'sha256': sha, 'step': learner.steps}
        _write_json_atomic(self.run_dir / LATEST, info)
        self._prune(path)
        return info

    def latest(self) -> Optional[Dict[str, Any]]:
        p = self.run_dir / LATEST
        if not p.is_file():
            return None
        try:
            info = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f'{p}: unreadable ({exc})') from None
        if not Path(info.get('path', '')).is_file():
            raise CheckpointError(f'{p} points at a missing checkpoint {info.get("path")!r}')
        return info

    def _prune(self, newest: Path) -> None:
        files = sorted(self.dir.glob('step_*.pt'))
        for old in files[:-self.keep]:
            if old != newest:
                try:
                    old.unlink()
                except OSError:
                    pass


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=str(path.parent))
    with os.fdopen(fd, 'w') as f:
        json.dump(dict(data), f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
