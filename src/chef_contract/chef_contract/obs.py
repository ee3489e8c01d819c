"""Frame stacking of observations, exactly as the benchmark does it (spec §B.7).

State signals keep the last 3 frames, `action/environment` the last 2; index 0 is the newest; on the
first step of an episode the buffer is filled with copies of the first observation; scalars stack to
shape (3,); images are not stacked. The env, the policy node and the dataset reader all use this one
class, so a policy sees the same tensors live as it saw in training.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from chef_contract.spec import STATE_OBSERVATIONS, ObservationKey

_BY_NAME = {k.name: k for k in STATE_OBSERVATIONS}


class ObservationError(ValueError):
    """Observation with a missing key, wrong shape or non-finite value."""


class FrameStacker:
    """Stacks single-frame observations; keys that are not state observations pass through."""

    def __init__(self, keys: Optional[Iterable[str]] = None):
        names = tuple(keys) if keys is not None else tuple(_BY_NAME)
        unknown = [n for n in names if n not in _BY_NAME]
        if unknown:
            raise ObservationError(f'not stackable state observations: {unknown}')
        self._keys: Dict[str, ObservationKey] = {n: _BY_NAME[n] for n in names}
        self._buffers: Dict[str, np.ndarray] = {}

    @property
    def keys(self):
        return tuple(self._keys)

    def reset(self) -> None:
        self._buffers.clear()

    def push(self, frame: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Add one raw frame; return freshly allocated stacked arrays (never views of the buffer)."""
        out: Dict[str, np.ndarray] = {}
        for name, key in self._keys.items():
            if name not in frame:
                raise ObservationError(f'observation frame lacks {name!r}')
            value = np.asarray(frame[name], dtype=np.float32).reshape(key.raw_shape)
            buf = self._buffers.get(name)
            if buf is None:
                buf = np.repeat(value[None], key.stack, axis=0)
            else:
                buf = np.concatenate([value[None], buf[:-1]], axis=0)
            self._buffers[name] = buf
            out[name] = buf.reshape(key.shape).copy()
        for name, value in frame.items():
            if name not in self._keys:
                out[name] = np.array(value, copy=True)
        return out


def flatten_state(obs: Mapping[str, np.ndarray], keys: Iterable[str]) -> np.ndarray:
    """Concatenate the stacked state observations `keys` in the given order into one float32 vector."""
    parts = []
    for name in keys:
        if name not in obs:
            raise ObservationError(f'observation lacks {name!r}')
        parts.append(np.asarray(obs[name], np.float32).reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def check_spec(obs: Mapping[str, np.ndarray], keys: Iterable[str]) -> None:
    """Raise ObservationError unless every key in `keys` is present with its exposed shape."""
    for name in keys:
        if name not in obs:
            raise ObservationError(f'observation lacks {name!r}')
        if name in _BY_NAME:
            want = _BY_NAME[name].shape
            got = np.shape(obs[name])
            if tuple(got) != want:
                raise ObservationError(f'{name}: shape {got}, expected {want}')
