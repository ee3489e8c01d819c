"""Validation of the pixel reward against the simulator's ground truth (used by the test and by
bench/bench_pixel_reward.py).

The MuJoCo cell (chef_sim.env.RgbStackingEnv) renders the two front cameras; the pixel reward sees
only those images plus the gripper state, with camera calibrations taken from the sim's cameras
(what a perfect calibration would give on a real cell). A scripted stacker that reads the ground
truth drives the arm, so episodes contain reaching, grasping, lifting, stacking and leaving, with
successes and failures. Compared per control tick: object positions (m), the staged reward, the
sparse success; per episode: success at the final tick.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from chef_contract.spec import MAX_LINEAR_SPEED_MPS, OBJECT_COLOURS, POLICY_CAMERAS, image_key
from chef_real.cameras import CameraCalibration
from chef_real.pixel_objects import EstimatorConfig
from chef_real.pixel_reward import PixelReward, terms_from_positions


def sim_cameras(env, names: Sequence[str] = POLICY_CAMERAS) -> Dict[str, CameraCalibration]:
    """Ideal calibrations of the sim's cameras (pose from MuJoCo, intrinsics from fovy)."""
    import mujoco
    mujoco.mj_forward(env.model, env.data)
    out = {}
    for n in names:
        cid = env.index.cameras[n]
        out[n] = CameraCalibration.from_mujoco(n, env.data.cam_xpos[cid], env.data.cam_xmat[cid],
                                               float(env.model.cam_fovy[cid]), env.config.image_size)
    return out


class ScriptedStacker:
    """Ground-truth pick-and-place of red onto blue in the agent's 5-D action space.

    Phases: above red -> descend -> close -> lift -> above blue -> lower -> open -> leave upwards.
    Gains are plain proportional control on the pinch position; yaw aligns the gripper with the
    red object's yaw about the vertical (mod 90 deg) so box-like objects fit between the fingers.
    """

    PHASES = ('above_red', 'descend', 'close', 'lift', 'above_blue', 'lower', 'open', 'leave', 'done')

    def __init__(self, gain_per_s: float = 6.0, rng: Optional[np.random.Generator] = None,
                 noise: float = 0.0):
        self.gain = gain_per_s
        self.rng = rng or np.random.default_rng(0)
        self.noise = noise
        self.reset()

    def reset(self):
        self.phase = 'above_red'
        self.counter = 0

    @staticmethod
    def _yaw(pose7) -> float:
        w, x, y, z = pose7[3:7]
        return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))

    def act(self, frame: Dict[str, np.ndarray]) -> np.ndarray:
        pinch = np.asarray(frame['sawyer/pinch/pose'][:3], np.float64)
        red = np.asarray(frame['rgb30_red/abs_pose'][:3], np.float64)
        blue = np.asarray(frame['rgb30_blue/abs_pose'][:3], np.float64)
        grip = -1.0
        target = pinch.copy()
        p = self.phase
        if p == 'above_red':
            target = red + [0, 0, 0.10]
        elif p == 'descend':
            target = red + [0, 0, -0.005]
        elif p in ('close', 'lift', 'above_blue', 'lower'):
            grip = 1.0
            target = {'close': red + [0, 0, -0.005], 'lift': np.r_[pinch[:2], blue[2] + 0.12],
                      'above_blue': np.r_[blue[:2], blue[2] + 0.12],
                      'lower': np.r_[blue[:2], blue[2] + 0.04 + (pinch[2] - red[2]) + 0.01]}[p]
        elif p == 'open':
            target = pinch
        elif p in ('leave', 'done'):
            target = np.r_[pinch[:2], red[2] + 0.12]
        err = target - pinch
        done = float(np.linalg.norm(err)) < 0.01
        self.counter += 1
        nxt = {'above_red': done or self.counter > 80, 'descend': done or self.counter > 60,
               'close': self.counter > 10, 'lift': done or self.counter > 60,
               'above_blue': done or self.counter > 80, 'lower': done or self.counter > 60,
               'open': self.counter > 10, 'leave': done or self.counter > 60, 'done': False}[p]
        if nxt:
            self.phase = self.PHASES[self.PHASES.index(p) + 1]
            self.counter = 0
        v = np.clip(self.gain * err / MAX_LINEAR_SPEED_MPS, -1, 1)
        if self.noise:
            v = np.clip(v + self.rng.normal(0, self.noise, 3), -1, 1)
        return np.array([v[0], v[1], v[2], 0.0, grip], np.float32)


@dataclass
class TickRecord:
    true_pos: Dict[str, np.ndarray]
    est_pos: Optional[Dict[str, np.ndarray]]
    true_terms: Dict[str, float]
    est_terms: Optional[Dict[str, float]]
    methods: Dict[str, str] = field(default_factory=dict)
    gripper: tuple = ()                     # (pinch xyz, finger 0..255, grasp flag) the reward used
    estimate_s: float = 0.0                 # wall time of segmentation + triangulation + terms


@dataclass
class EpisodeRecord:
    seed: int
    triplet: str
    ticks: List[TickRecord]

    @property
    def true_success(self) -> bool:
        return self.ticks[-1].true_terms['sparse_success'] > 0.5

    @property
    def est_success(self) -> bool:
        t = self.ticks[-1].est_terms
        return t is not None and t['sparse_success'] > 0.5


def run_episode(env, pixel: PixelReward, policy, seed: int, triplet: str, steps: int) -> EpisodeRecord:
    """One sim episode; the pixel reward sees the front images and the gripper state each tick."""
    _, info = env.reset(seed=seed, triplet=triplet)
    pixel.reset()
    policy.reset()
    ticks: List[TickRecord] = []
    for t in range(steps + 1):
        frame = info['frame']
        images = {c: frame[image_key(c)] for c in pixel.estimator.cams}
        pinch = np.asarray(frame['sawyer/pinch/pose'][:3], np.float64)
        finger, grasp = float(frame['gripper/joints/angle'][0]), float(frame['gripper/grasp'][0])
        t0 = time.perf_counter()
        est_terms = pixel.update(images, pinch, finger, grasp)
        dt = time.perf_counter() - t0
        est = pixel.estimator.positions()
        ticks.append(TickRecord(
            true_pos={c: np.asarray(frame[f'rgb30_{c}/abs_pose'][:3], np.float64) for c in OBJECT_COLOURS},
            est_pos=est, true_terms=dict(info['reward_terms']), est_terms=est_terms,
            methods={c: e.method for c, e in pixel.estimates.items()}, gripper=(pinch, finger, grasp),
            estimate_s=dt))
        if t == steps:
            break
        _, _, _, truncated, info = env.step(policy.act(frame))
        if truncated:
            break
    return EpisodeRecord(seed, triplet, ticks)


def summarize(episodes: Sequence[EpisodeRecord], tolerance_m: float = 0.02) -> Dict[str, object]:
    """Position errors, reward agreement and success agreement over all ticks and episodes."""
    errs = {c: [] for c in OBJECT_COLOURS}
    staged_err, sparse_true, sparse_est, stage_true, stage_est = [], [], [], [], []
    sparse_pose_truth, est_times = [], []
    for ep in episodes:
        for tk in ep.ticks:
            if tk.est_pos is None or tk.est_terms is None:
                continue
            for c in OBJECT_COLOURS:
                errs[c].append(float(np.linalg.norm(tk.est_pos[c] - tk.true_pos[c])))
            staged_err.append(abs(tk.est_terms['staged'] - tk.true_terms['staged']))
            sparse_true.append(tk.true_terms['sparse_success'] > 0.5)
            sparse_est.append(tk.est_terms['sparse_success'] > 0.5)
            stage_true.append(tk.true_terms['stack'] > 0.5)
            stage_est.append(tk.est_terms['stack'] > 0.5)
            est_times.append(tk.estimate_s)
            if tk.gripper:
                sparse_pose_truth.append(ground_truth_terms(tk)['sparse_success'] > 0.5)
    st, se = np.array(sparse_true), np.array(sparse_est)
    ep_true = np.array([e.true_success for e in episodes])
    ep_est = np.array([e.est_success for e in episodes])
    all_err = np.concatenate([np.asarray(v) for v in errs.values()]) if staged_err else np.zeros(0)
    out = {
        'episodes': len(episodes),
        'ticks': int(st.size),
        'position_error_m': {c: {'mean': float(np.mean(v)), 'median': float(np.median(v)),
                                 'p95': float(np.percentile(v, 95)), 'max': float(np.max(v))}
                             for c, v in errs.items() if v},
        'position_within_tolerance': float(np.mean(all_err <= tolerance_m)) if all_err.size else 0.0,
        'position_tolerance_m': tolerance_m,
        'staged_abs_error_mean': float(np.mean(staged_err)) if staged_err else float('nan'),
        'tick_success_agreement': float(np.mean(st == se)) if st.size else float('nan'),
        'tick_success_true_positives': int(np.sum(st & se)),
        'tick_success_false_positives': int(np.sum(~st & se)),
        'tick_success_false_negatives': int(np.sum(st & ~se)),
        'tick_success_true_rate': float(np.mean(st)) if st.size else float('nan'),
        'tick_stack_agreement': float(np.mean(np.array(stage_true) == np.array(stage_est))) if st.size else float('nan'),
        'episode_success_agreement': float(np.mean(ep_true == ep_est)) if len(episodes) else float('nan'),
        # baselines: the pose-only criterion on TRUE positions (best any position estimator can do
        # against the contact criterion), and always answering 'no success'
        'tick_success_agreement_true_positions': (float(np.mean(st == np.array(sparse_pose_truth)))
                                                  if len(sparse_pose_truth) == st.size and st.size else float('nan')),
        'tick_success_agreement_always_false': float(np.mean(~st)) if st.size else float('nan'),
        'estimate_ms_mean': 1e3 * float(np.mean(est_times)) if est_times else float('nan'),
        'episode_success_true': int(ep_true.sum()),
        'episode_success_est': int(ep_est.sum()),
    }
    return out


def ground_truth_terms(tick: TickRecord) -> Dict[str, float]:
    """Reward terms from the TRUE positions through the same pose-only success (isolates the
    position-estimation error from the contact-vs-pose success approximation)."""
    pinch, finger, grasp = tick.gripper
    return terms_from_positions(tick.true_pos['red'], tick.true_pos['blue'], pinch, finger, grasp)


def make_sim_env(image_size: int = 128, preset: str = 'fast'):
    from chef_sim.env import RgbStackingEnv, SimConfig
    return RgbStackingEnv(SimConfig(image_size=image_size, cameras=tuple(POLICY_CAMERAS), preset=preset))


def default_estimator_config() -> EstimatorConfig:
    return EstimatorConfig()
