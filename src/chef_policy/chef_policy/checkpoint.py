"""Policy checkpoints: state_dicts + JSON network config in one file, identified by its sha256.

File format (version 1): one `torch.save` archive holding only plain data,

    {'format': 'chef_policy.checkpoint', 'version': 1,
     'config': '<NetworkConfig as JSON>',
     'modules': {name: state_dict},            # e.g. 'actor', 'critic', 'target_critic'
     'extra': {...},                           # trainer resume state: optimiser state_dicts, step,
                                               # RNG states - tensors and primitive types only
     'meta': {'created_unix': float, 'torch': str}}

Loading never executes code from the file: `torch.load(weights_only=True)` refuses every pickled
global outside torch's tensor allow-list, and the result is then validated strictly (exact top-level
keys, format and version, the config through the strict dataclass loader, every module a mapping of
str -> Tensor, `extra` made only of tensors, numbers, strings, bools, None, lists, tuples and dicts).
Any failure is a CheckpointError naming the reason. The identity of a checkpoint is the sha256 of
the file's bytes (written atomically, so a reader never hashes a half-written file).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from chef_contract.config import ConfigError
from chef_policy.networks import MultiTaskActor, NetworkConfig

FORMAT = 'chef_policy.checkpoint'
VERSION = 1
MAX_BYTES = 4 << 30                    # refuse files over 4 GiB before reading them
_TOP_KEYS = {'format', 'version', 'config', 'modules', 'extra', 'meta'}
_PRIMITIVES = (bool, int, float, str, type(None))

PathLike = Union[str, Path]


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or used: unreadable, malformed, foreign or mismatched."""


def file_sha256(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _check_extra(value: Any, where: str) -> None:
    if isinstance(value, torch.Tensor) or type(value) in _PRIMITIVES:   # exact types: a str
        return                                                          # subclass would not load
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_extra(v, f'{where}[{i}]')
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) not in (str, int):
                raise CheckpointError(f'{where}: dict keys must be str or int, got {type(k).__name__}')
            _check_extra(v, f'{where}.{k}')
        return
    raise CheckpointError(f'{where}: {type(value).__name__} is not allowed in a checkpoint '
                          '(use tensors, numbers, strings, bools, None, lists, tuples, dicts)')


def _state_dict(name: str, module: Any) -> Dict[str, torch.Tensor]:
    sd = module.state_dict() if isinstance(module, nn.Module) else module
    if not isinstance(sd, Mapping):
        raise CheckpointError(f'module {name!r}: expected an nn.Module or a state_dict mapping')
    out = {}
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f'module {name!r}: state_dict entries must be str -> Tensor ({k!r})')
        out[k] = v.detach().cpu().clone()
    return out


def save_checkpoint(path: PathLike, modules: Mapping[str, Any], config: NetworkConfig,
                    extra: Optional[Mapping[str, Any]] = None) -> str:
    """Write modules' state_dicts + config (+ trainer `extra`) atomically to `path`; return sha256.

    `modules` maps names ('actor', 'critic', ...) to nn.Modules or state_dicts. `extra` holds the
    trainer's resume state (optimiser state_dicts, step, RNG states): tensors and primitive types
    only, checked here so a bad value fails at save time rather than at load time.
    """
    if not isinstance(config, NetworkConfig):
        raise CheckpointError(f'config must be a NetworkConfig, got {type(config).__name__}')
    if not modules:
        raise CheckpointError('save_checkpoint needs at least one module')
    extra = dict(extra or {})
    _check_extra(extra, 'extra')
    payload = {
        'format': FORMAT,
        'version': VERSION,
        'config': json.dumps(config.to_dict(), sort_keys=True),
        'modules': {str(name): _state_dict(str(name), m) for name, m in modules.items()},
        'extra': extra,
        'meta': {'created_unix': time.time(), 'torch': str(torch.__version__)},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=str(path.parent))
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return file_sha256(path)


def load_checkpoint(path: PathLike, expected_sha256: Optional[str] = None,
                    map_location: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[Dict[str, Any], NetworkConfig, str]:
    """Load and validate a checkpoint -> (state, config, sha256).

    `state` = {'modules': {name: state_dict}, 'extra': {...}, 'meta': {...}}. With
    `expected_sha256`, a file whose hash differs is refused before it is unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint not found: {path}')
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f'{path}: empty file')
    if size > MAX_BYTES:
        raise CheckpointError(f'{path}: {size} bytes is over the {MAX_BYTES} byte limit')
    sha = file_sha256(path)
    if expected_sha256 is not None and sha != expected_sha256.lower():
        raise CheckpointError(f'{path}: sha256 {sha} does not match the expected {expected_sha256}')
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle safely is a refusal
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = next((ln for ln in lines if 'Unpickler error' in ln), lines[0] if lines else '')
        raise CheckpointError(f'{path}: refused to load ({type(exc).__name__}: {why[:300]})') from None
    if not isinstance(data, dict) or set(data) != _TOP_KEYS:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f'{path}: not a chef_policy checkpoint (top level {got})')
    if data['format'] != FORMAT:
        raise CheckpointError(f'{path}: format {data["format"]!r}, expected {FORMAT!r}')
    if data['version'] != VERSION:
        raise CheckpointError(f'{path}: version {data["version"]!r}, this code reads {VERSION}')
    if not isinstance(data['config'], str):
        raise CheckpointError(f'{path}: config must be a JSON string')
    try:
        config = NetworkConfig.from_dict(json.loads(data['config']))
    except (json.JSONDecodeError, ConfigError, TypeError) as exc:
        raise CheckpointError(f'{path}: bad network config: {exc}') from None
    modules = data['modules']
    if not isinstance(modules, dict) or not modules:
        raise CheckpointError(f'{path}: modules must be a non-empty dict')
    for name, sd in modules.items():
        if not isinstance(name, str) or not isinstance(sd, dict):
            raise CheckpointError(f'{path}: module {name!r} is not a state_dict')
        for k, v in sd.items():
            if not isinstance(k, str) or not isinstance(v, torch.Tensor):
                raise CheckpointError(f'{path}: module {name!r} entry {k!r} is not a tensor')
    if not isinstance(data['extra'], dict):
        raise CheckpointError(f'{path}: extra must be a dict')
    try:
        _check_extra(data['extra'], 'extra')
        _check_extra(data['meta'], 'meta')
    except CheckpointError as exc:
        raise CheckpointError(f'{path}: {exc}') from None
    state = {'modules': modules, 'extra': data['extra'], 'meta': data['meta']}
    return state, config, sha


def build_policy_from_checkpoint(path: PathLike, expected_sha256: Optional[str] = None,
                                 module: str = 'actor', device: Union[str, torch.device] = 'cpu'
                                 ) -> Tuple[MultiTaskActor, NetworkConfig, str]:
    """Checkpoint -> (MultiTaskActor in eval mode with strict weights, config, sha256)."""
    state, config, sha = load_checkpoint(path, expected_sha256, map_location=device)
    if module not in state['modules']:
        raise CheckpointError(f'{path}: no {module!r} module (has {sorted(state["modules"])})')
    actor = MultiTaskActor(config)
    try:
        actor.load_state_dict(state['modules'][module], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f'{path}: {module} weights do not fit the config: '
                              f'{str(exc).splitlines()[0]}') from None
    for name, p in actor.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise CheckpointError(f'{path}: {module}.{name} holds NaN or inf')
    return actor.to(device).eval(), config, sha


def describe(path: PathLike) -> Dict[str, Any]:
    """Summary of a checkpoint (sha256, config, module sizes, extra keys) - loads it safely."""
    state, config, sha = load_checkpoint(path)
    return {'path': str(path), 'sha256': sha, 'config': config.to_dict(),
            'modules': {n: sum(int(t.numel()) for t in sd.values()) for n, sd in state['modules'].items()},
            'extra_keys': sorted(state['extra']), 'meta': state['meta']}


def main(argv=None) -> int:
    """`python -m chef_policy.checkpoint PATH...`: print each checkpoint's summary as JSON."""
    import sys
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print('usage: python -m chef_policy.checkpoint CHECKPOINT...', file=sys.stderr)
        return 2
    code = 0
    for p in paths:
        try:
            print(json.dumps(describe(p), indent=2, sort_keys=True))
        except CheckpointError as exc:
            print(f'{p}: {exc}', file=sys.stderr)
            code = 1
    return code


if __name__ == '__main__':
    raise SystemExit(main())
