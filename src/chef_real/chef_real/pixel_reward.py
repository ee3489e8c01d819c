"""Reward from pixels (ROS-free): object positions from the front cameras -> the benchmark's terms.

    pr = PixelReward(cameras)                         # {name: CameraCalibration}
    terms = pr.update(images, pinch_xyz, finger_255, grasp_flag)

`terms` has every chef_contract.spec.REWARD_TERMS entry: the five stage terms and 'staged' from
chef_contract.rewards.reward_terms (the code-exact port of rgb_stacking's shaped reward) evaluated on
the estimated red and blue positions, and 'sparse_success' from
chef_contract.rewards.sparse_success_pose_only
(a real cell has no contact sensing: red above blue, gripper not grasping, pinch clear of red).
Pinch position, finger angle and grasp flag come from the cell's state (state_adapter on a real
cell), exactly as the sim's reward reads them.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from chef_contract import rewards as R
from chef_contract.spec import REWARD_TERMS
from chef_real.cameras import CameraCalibration
from chef_real.pixel_objects import EstimatorConfig, ObjectEstimate, PixelObjectEstimator


def terms_from_positions(red: Sequence[float], blue: Sequence[float], pinch: Sequence[float],
                         finger_255: float, grasp_flag: float) -> Dict[str, float]:
    """All contract reward terms from positions (m, base_link) and the gripper state."""
    terms = R.reward_terms(red, blue, pinch, finger_255, grasp_flag)
    terms['sparse_success'] = float(R.sparse_success_pose_only(red, blue, pinch, grasp_flag, finger_255))
    return {k: float(terms[k]) for k in REWARD_TERMS}


class PixelReward:
    """Object estimator + reward terms; one `update` per control tick."""

    def __init__(self, cameras: Mapping[str, CameraCalibration], config: Optional[EstimatorConfig] = None):
        self.estimator = PixelObjectEstimator(cameras, config)

    @property
    def estimates(self) -> Dict[str, ObjectEstimate]:
        return self.estimator.estimates

    def reset(self):
        self.estimator.reset()

    def update(self, images: Mapping[str, np.ndarray], pinch_xyz: Sequence[float], finger_255: float,
               grasp_flag: float) -> Optional[Dict[str, float]]:
        """Terms of this tick, or None until every colour has been seen once."""
        self.estimator.update(images)
        pos = self.estimator.positions()
        if pos is None:
            return None
        return terms_from_positions(pos['red'], pos['blue'], pinch_xyz, finger_255, grasp_flag)
