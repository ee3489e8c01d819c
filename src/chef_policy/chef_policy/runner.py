"""Acting, without ROS: policies (network checkpoint or scripted expert) and the per-tick runner.

`PolicyRunner.act(frame, stamp_ns)` is one control tick: push the unstacked observation frame
(chef_contract.frames.messages_to_frame output) into the FrameStacker, pick the intention of this
step from the episode's IntentionSchedule, and ask the policy for a 5-D action in [-1, 1]. The
policy node, the latency bench and the tests all drive this one class, so live tensors equal
training tensors (same FrameStacker, same obs_to_tensors).

Policies:
* `NetworkPolicy`: a MultiTaskActor from a checkpoint (chef_policy.checkpoint); stochastic
  (mean + std * N(0, 1), gripper sampled) or deterministic (mean, most likely gripper class); an
  action-chunking actor (action_horizon > 1) acts on its chunks' temporal ensemble.
* `ScriptedPolicy`: wraps chef_sim.expert.ScriptedStacker (privileged sim expert, reads the
  stacked observation incl. object poses); action noise `noise_std` seeded per episode; it ignores
  the intention (it always does the full stacking task).
* `chef_policy.ensemble.EnsemblePolicy`: K policies acting as one, from a `<name>.ensemble.json`
  manifest, which `make_policy` (and so the policy node's `policy` parameter) takes like a checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from chef_contract.obs import FrameStacker
from chef_contract.spec import (
    INTENTIONS, REAL_STATE_OBSERVATION_NAMES, STATE_OBSERVATION_NAMES,
)
from chef_policy.checkpoint import build_policy_from_checkpoint
from chef_policy.chunking import TemporalEnsemble
from chef_policy.networks import (
    MultiTaskActor, NetworkConfig, dummy_observation, obs_to_tensors, sample_action,
)
from chef_policy.schedule import IntentionSchedule


class PolicyError(RuntimeError):
    """A policy that cannot act (bad output, missing dependency)."""


class NetworkPolicy:
    """A checkpointed MultiTaskActor acting on stacked observations."""

    kind = 'network'

    def __init__(self, actor: MultiTaskActor, config: NetworkConfig, sha256: str = '',
                 source: str = ''):
        self.actor = actor.eval()
        self.config = config
        self.sha256 = sha256
        self.source = source
        stem = Path(source).stem if source else 'actor'
        self.policy_id = f'{stem}@{sha256[:12]}' if sha256 else stem
        self.cameras = tuple(config.cameras) if config.obs_mode == 'pixels' else ()
        self.needs_objects = config.privileged
        self.stack_keys = config.input_keys
        self.n_intentions = config.n_intentions
        self.generator = torch.Generator()
        self.warmup_ms: Optional[float] = None
        horizon = int(getattr(actor, 'horizon', 1))
        self.chunks = TemporalEnsemble(horizon) if horizon > 1 else None

    @classmethod
    def from_checkpoint(cls, path, expected_sha256: Optional[str] = None) -> 'NetworkPolicy':
        actor, config, sha = build_policy_from_checkpoint(path, expected_sha256 or None)
        return cls(actor, config, sha, str(path))

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
        if self.chunks is not None:
            self.chunks.reset()

    @torch.inference_mode()
    def act(self, obs: Mapping[str, np.ndarray], frame: Mapping[str, np.ndarray], intention: int,
            deterministic: bool) -> np.ndarray:
        """One tick's command; an action-chunking actor acts on the temporal ensemble of its last
        H chunks (chef_policy.chunking; the episode's chunks are forgotten at reset)."""
        if self.chunks is None:
            mean, std, logits = self.actor(obs_to_tensors(obs, self.config))
        else:
            mean, std, logits = (x[None] for x in self.chunks.push(
                *(y[0] for y in self.actor.forward_chunk(obs_to_tensors(obs, self.config)))))
        a = sample_action(mean, std, logits, intention, deterministic, self.generator)
        return a[0].numpy().astype(np.float32)

    @torch.inference_mode()
    def warmup(self, iterations: int) -> float:
        """Run `iterations` forward passes on dummy inputs; return the last one's time in ms."""
        obs = dummy_observation(self.config)
        ms = 0.0
        for _ in range(max(1, iterations)):
            t0 = time.perf_counter()
            self.actor(obs)
            ms = (time.perf_counter() - t0) * 1e3
        self.warmup_ms = ms
        return ms

    def info(self) -> Dict[str, Any]:
        return {'policy_id': self.policy_id, 'kind': self.kind, 'checkpoint_sha256': self.sha256,
                'source': self.source, 'config': self.config.to_dict(), 'warmup_ms': self.warmup_ms}


class ScriptedPolicy:
    """The privileged scripted stacker of chef_sim (sim only: reads object poses)."""

    kind = 'scripted'
    cameras: Tuple[str, ...] = ()
    needs_objects = True
    stack_keys = STATE_OBSERVATION_NAMES
    n_intentions = len(INTENTIONS)
    sha256 = ''

    def __init__(self, noise_std: float = 0.0, seed: int = 0):
        try:
            from chef_sim.expert import ScriptedStacker
        except ImportError as exc:          # pragma: no cover - chef_sim is part of the workspace
            raise PolicyError(f'scripted policy needs chef_sim.expert: {exc}') from None
        self.noise_std = float(noise_std)
        self.seed = int(seed)
        self.expert = ScriptedStacker(noise_std=self.noise_std, seed=self.seed)
        self.policy_id = f'scripted(noise={self.noise_std:g})'
        self.source = 'chef_sim.expert.ScriptedStacker'
        self.warmup_ms = 0.0

    def reset(self, seed: int) -> None:
        """A fresh expert per episode, its noise seeded from the episode (reproducible)."""
        from chef_sim.expert import ScriptedStacker
        self.expert = ScriptedStacker(noise_std=self.noise_std, seed=(self.seed, int(seed)))

    def act(self, obs, frame, intention: int, deterministic: bool) -> np.ndarray:
        return np.asarray(self.expert.act(obs), np.float32).reshape(5)

    def warmup(self, iterations: int) -> float:
        return 0.0

    def info(self) -> Dict[str, Any]:
        return {'policy_id': self.policy_id, 'kind': self.kind, 'checkpoint_sha256': '',
                'source': self.source, 'config': {'noise_std': self.noise_std, 'seed': self.seed},
                'warmup_ms': 0.0}


def make_policy(spec: str, noise_std: float = 0.0, seed: int = 0,
                expected_sha256: Optional[str] = None):
    """'scripted' -> ScriptedPolicy; a checkpoint path -> NetworkPolicy; an ensemble manifest
    (*.ensemble.json) -> EnsemblePolicy; '' -> None (no policy)."""
    spec = (spec or '').strip()
    if not spec or spec == 'none':
        return None
    if spec == 'scripted':
        return ScriptedPolicy(noise_std, seed)
    from chef_policy.ensemble import ENSEMBLE_SUFFIX, load_ensemble
    if spec.endswith(ENSEMBLE_SUFFIX):
        return load_ensemble(spec, expected_sha256)
    return NetworkPolicy.from_checkpoint(spec, expected_sha256)


@dataclass
class StepResult:
    action: np.ndarray            # 5-D, [-1, 1]
    intention: int
    tick: int                     # step within the episode (0 = first action of the episode)
    inference_ms: float


class PolicyRunner:
    """Frame stacking + intention schedule + policy: one `act` per control tick."""

    def __init__(self, policy, schedule: Optional[IntentionSchedule] = None,
                 deterministic: bool = False, seed: int = 0):
        self.schedule = schedule or IntentionSchedule()
        self.deterministic = deterministic
        self.base_seed = int(seed)
        self.policy = None
        self.stacker: Optional[FrameStacker] = None
        self.tick = 0
        self.episode_seed = int(seed)
        self.swap(policy)

    @staticmethod
    def stack_keys_for(policy) -> Tuple[str, ...]:
        """Stack every state key the cell publishes, so a swapped-in policy finds its history."""
        if policy is None:
            return REAL_STATE_OBSERVATION_NAMES
        if policy.needs_objects:
            return STATE_OBSERVATION_NAMES
        return REAL_STATE_OBSERVATION_NAMES

    def swap(self, policy) -> None:
        """Use `policy` from the next tick on; frame history is kept if the stacked keys agree."""
        keys = self.stack_keys_for(policy)
        if self.stacker is None or set(self.stacker.keys) != set(keys):
            self.stacker = FrameStacker(keys)
        if policy is not None and self.policy is not policy:
            policy.reset(self._policy_seed())
        self.policy = policy

    def _policy_seed(self) -> int:
        return (self.base_seed * 1_000_003 + self.episode_seed) & 0x7FFFFFFF

    def start_episode(self, seed: int, tags: Optional[Mapping[str, Any]] = None) -> None:
        self.episode_seed = int(seed)
        self.stacker.reset()
        self.schedule.reset(self._policy_seed(), tags)
        self.tick = 0
        if self.policy is not None:
            self.policy.reset(self._policy_seed())

    def count_acted(self, frame: Mapping[str, np.ndarray]) -> None:
        """Record a tick that was already acted on (before its episode's start event arrived): push
        its frame and count it, without asking the policy again."""
        self.stacker.push(frame)
        self.tick += 1

    def act(self, frame: Mapping[str, np.ndarray]) -> StepResult:
        if self.policy is None:
            raise PolicyError('no policy loaded')
        obs = self.stacker.push(frame)
        intention = self.schedule.intention(self.tick)
        if intention >= self.policy.n_intentions:
            intention = self.policy.n_intentions - 1
        t0 = time.perf_counter()
        action = self.policy.act(obs, frame, intention, self.deterministic)
        ms = (time.perf_counter() - t0) * 1e3
        if action.shape != (5,) or not np.all(np.isfinite(action)):
            raise PolicyError(f'policy {self.policy.policy_id} produced a bad action {action!r}')
        result = StepResult(np.clip(action, -1.0, 1.0), intention, self.tick, ms)
        self.tick += 1
        return result
