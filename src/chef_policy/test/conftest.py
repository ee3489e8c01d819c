"""Shared fixtures: synthetic observation frames with the contract's keys, shapes and units."""

import numpy as np
import pytest
import torch

from chef_contract.spec import CAMERA_NAMES, STATE_OBSERVATIONS, image_key

torch.set_num_threads(1)


def make_frame(rng: np.random.Generator, image_size: int = 128, cameras=CAMERA_NAMES) -> dict:
    """One unstacked observation frame: every state key (raw shape) + camera images."""
    frame = {}
    for key in STATE_OBSERVATIONS:
        frame[key.name] = rng.normal(size=key.raw_shape).astype(np.float32)
    for cam in cameras:
        frame[image_key(cam)] = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
    return frame


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
