"""Strict, typed configuration: YAML <-> nested dataclasses, unknown keys are errors.

Every config of the stack (CHEF loop, learners, sim presets, search spaces) is a dataclass loaded with
`load_config`. A wrong key fails loudly with the nearest valid name, instead of being ignored.
`apply_overrides` takes `a.b.c=value` strings from the command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Type, TypeVar

import yaml

T = TypeVar('T')


_SCIENTIFIC = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+')


class ConfigError(ValueError):
    """Invalid configuration: unknown key, wrong type, or a value outside its documented range."""


def _hint(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f' (did you mean {close[0]!r}?)' if close else ''


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError('; '.join(errors))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f'{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}')
        return from_dict(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list, got {type(value).__name__}')
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f'{where}: expected {len(args)} items, got {len(value)}')
            return tuple(_coerce(v, a, f'{where}[{i}]') for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        seq = [_coerce(v, item, f'{where}[{i}]') for i, v in enumerate(value)]
        return tuple(seq) if (origin is tuple or tp is tuple) else seq
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f'{where}: expected a mapping, got {type(value).__name__}')
        kt, vt = (args or (Any, Any))
        return {_coerce(k, kt, where): _coerce(v, vt, f'{where}.{k}') for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)            # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}: expected a number, got {value!r}')
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where}: expected an integer, got {value!r}')
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true/false, got {value!r}')
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string, got {value!r}')
        return value
    return value


def _check_field(f: dataclasses.Field, value: Any, where: str) -> None:
    meta = f.metadata or {}
    if 'choices' in meta and value not in meta['choices']:
        raise ConfigError(f'{where}: {value!r} is not one of {list(meta["choices"])}')
    if value is None or isinstance(value, bool):
        return
    if 'min' in meta and isinstance(value, (int, float)) and value < meta['min']:
        raise ConfigError(f'{where}: {value} is below the minimum {meta["min"]}')
    if 'max' in meta and isinstance(value, (int, float)) and value > meta['max']:
        raise ConfigError(f'{where}: {value} is above the maximum {meta["max"]}')


def from_dict(cls: Type[T], data: Mapping[str, Any], where: str = '') -> T:
    """Build dataclass `cls` from `data`; unknown keys, wrong types and range violations raise."""
    hints = typing.get_type_hints(cls)
    flds = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f'{where}.{key}' if where else key
        if key not in flds:
            raise ConfigError(f'unknown config key {path!r}{_hint(key, flds)}; '
                              f'valid keys here: {", ".join(sorted(flds))}')
        coerced = _coerce(value, hints[key], path)
        _check_field(flds[key], coerced, path)
        kwargs[key] = coerced
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f'{where or cls.__name__}: {exc}') from None
    for name, f in flds.items():
        if name not in kwargs:
            _check_field(f, getattr(obj, name), f'{where}.{name}' if where else name)
    return obj


def to_dict(obj: Any) -> Dict[str, Any]:
    """Dataclass -> plain dict (tuples become lists) that round-trips through from_dict and YAML."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(obj)


def config_hash(obj: Any) -> str:
    """Stable sha256 (hex, 16 chars) of a config's content."""
    blob = json.dumps(to_dict(obj), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _set_path(data: Dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split('.')
    cur = data
    for k in keys[:-1]:
        nxt = cur.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f'override {dotted!r}: {k!r} is not a section')
        cur = nxt
    cur[keys[-1]] = value


def apply_overrides(data: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply `a.b=value` overrides (value parsed as YAML) to a raw config dict, in place."""
    for item in overrides:
        if '=' not in item:
            raise ConfigError(f'override {item!r} must look like key.path=value')
        key, raw = item.split('=', 1)
        _set_path(data, key.strip(), yaml.safe_load(raw))
    return data


def load_config(cls: Type[T], path: 'str | Path | None' = None, overrides: Iterable[str] = (),
                section: str | None = None) -> T:
    """Load dataclass `cls` from a YAML file (optionally one top-level `section`) plus overrides."""
    data: Dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f'config file not found: {p}')
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f'{p}: not valid YAML: {exc}') from None
        if section is not None:
            loaded = loaded.get(section, {}) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f'{p}: top level must be a mapping')
        data = loaded
    apply_overrides(data, overrides)
    return from_dict(cls, data, where='')


def save_config(obj: Any, path: 'str | Path') -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))


def describe(cls: Type[Any], indent: str = '') -> str:
    """Human-readable listing of a config dataclass: key, default, help (used by --help texts)."""
    lines = []
    for f in dataclasses.fields(cls):
        default = (f.default if f.default is not dataclasses.MISSING
                   else f.default_factory() if f.default_factory is not dataclasses.MISSING else '?')
        helptext = (f.metadata or {}).get('help', '')
        if dataclasses.is_dataclass(default):
            lines.append(f'{indent}{f.name}:  {helptext}')
            lines.append(describe(type(default), indent + '  '))
        else:
            lines.append(f'{indent}{f.name} = {default!r}  {helptext}')
    return '\n'.join(lines)


def field_(default: Any = dataclasses.MISSING, *, help: str = '', min: Any = None, max: Any = None,
           choices: Any = None, default_factory: Any = dataclasses.MISSING):
    """dataclasses.field with documented metadata (help, min, max, choices) checked by from_dict."""
    meta = {'help': help}
    if min is not None:
        meta['min'] = min
    if max is not None:
        meta['max'] = max
    if choices is not None:
        meta['choices'] = tuple(choices)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
