"""ROS-free policy evaluation in the MuJoCo cell: success per test triplet with Wilson intervals.

The same per-tick path as a cell, without DDS: `PolicyRunner` (frame stacking, intention
schedule) -> action -> `chef_contract.action.to_command` -> `SafetyFilter` (the cells' limits, one
`SafetyLimits` from `chef_policy.safety.load_limits`, passed through) -> `from_command` ->
`RgbStackingEnv.step`. Benches and offline previews use it; the CHEF stages evaluate through the
ROS graph (stages.py). Episode e of triplet i always uses seed `seed + 1000 * i + e`, so two
policies evaluated with the same arguments meet exactly the same initial scenes.

    spec = PolicySpec('checkpoint', path='runs/x/checkpoints/...pt')
    result = evaluate(spec, episodes_per_triplet=10, seed=900_000, workers=2)
    print(result.pooled)        # Rate: successes / trials with a 95 % Wilson interval

A `PolicySpec` names the policy so a worker process can rebuild it: a chef checkpoint, the scripted
expert (with its action noise), or a TorchScript module that maps the flattened stacked state
vector to a 5-D action (how the benches evaluate independent baselines such as d3rlpy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from chef_contract.spec import CONTROL_PERIOD_S, EPISODE_STEPS, INTENTIONS, STATE_OBSERVATION_NAMES, TEST_TRIPLETS
from chef_loop.stats import Rate, success_table

TEST_TRIPLET_NAMES: Tuple[str, ...] = tuple(TEST_TRIPLETS)


@dataclass(frozen=True)
class PolicySpec:
    """What to evaluate. kind: 'checkpoint' (path), 'scripted' (noise), 'torchscript' (path, keys),
    'ensemble' (members: chef_policy.ensemble.EnsemblePolicy)."""

    kind: str
    path: str = ''
    noise: float = 0.0
    keys: Tuple[str, ...] = STATE_OBSERVATION_NAMES     # torchscript: stacked keys, in this order
    intention: str = 'staged'                           # the head that acts (chef checkpoints)
    deterministic: bool = True
    members: Tuple['PolicySpec', ...] = ()              # ensemble: the member policies

    def __post_init__(self):
        if self.kind not in ('checkpoint', 'scripted', 'torchscript', 'ensemble'):
            raise ValueError(f'unknown policy kind {self.kind!r}')
        if self.kind == 'ensemble':
            if len(self.members) < 2:
                raise ValueError('an ensemble policy needs at least 2 members')
        elif self.kind != 'scripted' and not self.path:
            raise ValueError(f'a {self.kind} policy needs a path')


@dataclass
class EpisodeResult:
    triplet: str
    seed: int
    success: bool
    staged_return: float


@dataclass
class EvalResult:
    episodes: List[EpisodeResult] = field(default_factory=list)

    @property
    def table(self) -> Dict[str, Rate]:
        return success_table((e.triplet, e.success) for e in self.episodes)

    @property
    def pooled(self) -> Rate:
        return self.table['mean']

    def to_dict(self) -> Dict[str, Any]:
        t = self.table
        return {'pooled': t['mean'].to_dict(),
                'per_triplet': {k: v.to_dict() for k, v in t.items() if k != 'mean'},
                'mean_staged_return': float(np.mean([e.staged_return for e in self.episodes]))
                if self.episodes else 0.0,
                'episodes': [e.__dict__ for e in self.episodes]}


class TorchScriptStatePolicy:
    """A TorchScript module f(x [1, D]) -> action [1, >=5] over the flattened stacked state keys."""

    kind = 'torchscript'
    cameras: Tuple[str, ...] = ()
    needs_objects = True
    stack_keys = STATE_OBSERVATION_NAMES
    n_intentions = 1
    sha256 = ''

    def __init__(self, path: str, keys: Sequence[str]):
        import torch
        self.module = torch.jit.load(path, map_location='cpu').eval()
        self.keys = tuple(keys)
        self.policy_id = f'torchscript:{path}'

    def reset(self, seed: int) -> None:
        pass

    def act(self, obs, frame, intention: int, deterministic: bool) -> np.ndarray:
        import torch
        x = np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k in self.keys])[None]
        with torch.inference_mode():
            a = self.module(torch.from_numpy(x)).reshape(-1).numpy()[:5].astype(np.float32)
        a = a.copy()
        a[4] = 1.0 if a[4] > 0 else -1.0        # the bang-bang gripper, as the effector reads it
        return np.clip(a, -1.0, 1.0)

    def warmup(self, iterations: int) -> float:
        return 0.0


def build_policy(spec: PolicySpec, seed: int = 0):
    from chef_policy.ensemble import EnsemblePolicy
    from chef_policy.runner import NetworkPolicy, ScriptedPolicy
    if spec.kind == 'ensemble':
        return EnsemblePolicy([build_policy(m, seed) for m in spec.members])
    if spec.kind == 'checkpoint':
        return NetworkPolicy.from_checkpoint(spec.path)
    if spec.kind == 'scripted':
        return ScriptedPolicy(spec.noise, seed)
    return TorchScriptStatePolicy(spec.path, spec.keys)


def episode_seed(seed: int, triplet_index: int, episode: int) -> int:
    return int(seed) + 1000 * int(triplet_index) + int(episode)


def run_episode(env, runner, seed: int, triplet: str, steps: int = EPISODE_STEPS,
                limits=None, on_step=None) -> EpisodeResult:
    """One episode through the safety filter with `limits` (chef_policy.safety.SafetyLimits; None =
    the cells' config/safety_filter.yaml); success = the sparse criterion at the last tick.
    `on_step(info)`, if given, sees the env's info of every tick."""
    from chef_contract.action import from_command, to_command
    from chef_policy.safety import SafetyFilter, load_limits
    filt = SafetyFilter(limits if limits is not None else load_limits())
    _, info = env.reset(seed=seed, triplet=triplet)
    runner.start_episode(seed)
    frame, prev_p, prev_j6 = info['frame'], None, None
    staged = 0.0
    for _ in range(steps):
        step = runner.act(frame)
        linear, yaw, gripper = to_command(step.action)
        p = np.asarray(frame['sawyer/pinch/pose'][:3], np.float64)
        j6 = float(frame['sawyer/joints/angle'][6])
        vel = (p - prev_p) / CONTROL_PERIOD_S if prev_p is not None else None
        rate = (j6 - prev_j6) / CONTROL_PERIOD_S if prev_p is not None else None
        prev_p, prev_j6 = p, j6
        twist, held, _ = filt.filter(tuple(linear) + (0.0, 0.0, yaw), gripper, p, j6, 0.0, 0.0, vel, rate)
        _, _, _, truncated, info = env.step(from_command(twist[:3], twist[5], held))
        frame = info['frame']
        staged += float(info['reward_terms']['staged'])
        if on_step is not None:
            on_step(info)
        if truncated:
            break
    return EpisodeResult(triplet, int(seed), bool(info['success']), staged)


def _evaluate_jobs(spec: PolicySpec, jobs: Sequence[Tuple[str, int]], preset: str,
                   torch_threads: int = 1, limits=None) -> List[EpisodeResult]:
    import torch
    torch.set_num_threads(torch_threads)
    from chef_policy.runner import PolicyRunner
    from chef_policy.safety import load_limits
    from chef_policy.schedule import IntentionSchedule
    from chef_sim.env import RgbStackingEnv, SimConfig
    limits = limits if limits is not None else load_limits()
    env = RgbStackingEnv(SimConfig(render_images=False, preset=preset))
    try:
        policy = build_policy(spec)
        k = INTENTIONS.index(spec.intention) if spec.intention in INTENTIONS else 0
        k = min(k, policy.n_intentions - 1) if policy.n_intentions < len(INTENTIONS) else k
        runner = PolicyRunner(policy, schedule=IntentionSchedule(fixed=k), deterministic=spec.deterministic)
        return [run_episode(env, runner, seed, triplet, limits=limits) for triplet, seed in jobs]
    finally:
        env.close()


def evaluate(spec: PolicySpec, episodes_per_triplet: int = 10, seed: int = 900_000,
             triplets: Sequence[str] = TEST_TRIPLET_NAMES, preset: str = 'fast',
             workers: int = 1, limits=None) -> EvalResult:
    """Evaluate one policy on `episodes_per_triplet` seeded scenes of every triplet, every command
    through a SafetyFilter with `limits` (None = chef_policy.safety.load_limits(), what the cells use)."""
    from chef_policy.safety import load_limits
    limits = limits if limits is not None else load_limits()
    jobs = [(t, episode_seed(seed, i, e)) for i, t in enumerate(triplets) for e in range(episodes_per_triplet)]
    if workers <= 1:
        return EvalResult(_evaluate_jobs(spec, jobs, preset, limits=limits))
    from chef_loop.workers import process_map
    chunks = [jobs[w::workers] for w in range(workers)]
    parts = process_map(_evaluate_jobs, [(spec, c, preset, 1, limits) for c in chunks if c], workers)
    return EvalResult([r for part in parts for r in part])
