"""Where the benchmark's own assets live, and the RGB-object sets and triplet samplers (spec §B.12).

The Sawyer, Robotiq 2F-85, FTS-300, basket and the 152 RGB-object STLs ship inside the
`dm-robotics-moma` / `dm-robotics-manipulation` wheels (installed --no-deps in .venv). They are read
from the installed packages, never copied into this repository.

Object sets are derived from the mesh folders (the same files `rgb_object.py` scans), which avoids
importing `rgb_object` (~2 s) in every process; test_assets.py checks them against `rgb_object`.

  * train   = the 103 ids in meshes/train          (`rgb_train_random`, colours drawn independently,
                                                      with replacement)
  * heldout = all 2-character ids = meshes/heldout (36) + meshes/test_triplets (13) = 49
                                                     (`rgb_heldout_random`, same sampling)
  * test    = the 13 ids in meshes/test_triplets; `rgb_test_random` picks one of the 5 test triplets.

Difference to the benchmark code: `rgb_stacking.environment` draws a random triplet once, when the
environment is built; here a random set is re-sampled at every reset (from the reset's seed).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from chef_contract.spec import RANDOM_TRIPLET_SETS, TEST_TRIPLETS

Triplet = Tuple[str, str, str]     # (red, green, blue) object ids


class AssetError(RuntimeError):
    """The benchmark assets are not installed where they are expected."""


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f'{module} is not installed; install dm-robotics-moma and '
                         f'dm-robotics-manipulation with --no-deps (see requirements-nodeps.txt)')
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=None)
def rgb_mesh_root() -> Path:
    root = _package_dir('dm_robotics.manipulation') / 'props' / 'rgb_objects' / 'assets' / 'rgb_v1.3' / 'meshes'
    if not root.is_dir():
        raise AssetError(f'RGB-object meshes not found at {root}')
    return root


@functools.lru_cache(maxsize=None)
def object_mesh_files() -> Dict[str, Path]:
    """object id -> STL path, for all 152 RGB-objects (sorted by id)."""
    out: Dict[str, Path] = {}
    for folder in ('test_triplets', 'train', 'heldout'):
        for path in sorted((rgb_mesh_root() / folder).glob('*.stl')):
            oid = path.name.split('_')[0]
            if oid in out:
                raise AssetError(f'duplicate RGB-object id {oid}: {out[oid]} and {path}')
            out[oid] = path
    return dict(sorted(out.items()))


def _folder_ids(folder: str) -> Tuple[str, ...]:
    return tuple(sorted(p.name.split('_')[0] for p in (rgb_mesh_root() / folder).glob('*.stl')))


@functools.lru_cache(maxsize=None)
def object_sets() -> Dict[str, Tuple[str, ...]]:
    """'train' (103), 'heldout' (49 = every 2-character id), 'test' (13), 'all' (152)."""
    all_ids = tuple(object_mesh_files())
    return {
        'train': _folder_ids('train'),
        'heldout': tuple(sorted(i for i in all_ids if len(i) == 2)),
        'test': _folder_ids('test_triplets'),
        'all': all_ids,
    }


TRIPLET_NAMES = tuple(TEST_TRIPLETS) + tuple(RANDOM_TRIPLET_SETS)


def sample_triplet(name: str, rng: np.random.Generator) -> Triplet:
    """Object ids (red, green, blue) for triplet or triplet-set `name`, drawn with `rng`.

    Fixed test triplets ignore `rng`. `rgb_train_random` / `rgb_heldout_random` draw each colour
    independently with replacement (as `rgb_object.random_triplet`); `rgb_test_random` picks one of
    the five test triplets uniformly (as `rgb_object.fixed_random_triplet`).
    """
    if name in TEST_TRIPLETS:
        return tuple(TEST_TRIPLETS[name])          # type: ignore[return-value]
    sets = object_sets()
    if name == 'rgb_train_random':
        ids = sets['train']
    elif name == 'rgb_heldout_random':
        ids = sets['heldout']
    elif name == 'rgb_test_random':
        keys = sorted(TEST_TRIPLETS)
        return tuple(TEST_TRIPLETS[keys[int(rng.integers(len(keys)))]])   # type: ignore[return-value]
    else:
        raise ValueError(f'unknown triplet {name!r}; expected one of {TRIPLET_NAMES} '
                         f'or explicit ids like "r3,s0,b2"')
    return tuple(ids[int(i)] for i in rng.integers(len(ids), size=3))   # type: ignore[return-value]


def parse_triplet(name: str, rng: np.random.Generator) -> Triplet:
    """A triplet name, a random set name, or explicit ids 'red,green,blue' -> object ids."""
    if ',' in name:
        ids = tuple(s.strip() for s in name.split(','))
        unknown = [i for i in ids if i not in object_mesh_files()]
        if len(ids) != 3 or unknown:
            raise ValueError(f'explicit triplet {name!r} needs 3 known object ids (unknown: {unknown})')
        return ids    # type: ignore[return-value]
    return sample_triplet(name, rng)


def moma_dir() -> Path:
    return _package_dir('dm_robotics.moma')


def env_cache_dir() -> Path:
    """Where compiled scene caches go (XDG cache; never inside the repository)."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'chef_sim'
