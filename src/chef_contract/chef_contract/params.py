"""ROS parameters declared from one typed dataclass per node.

A node module defines `Params` (a dataclass whose fields use `chef_contract.config.field_` for help,
min, max, choices) and calls `declare_params(self, Params)` in its `__init__`. This:
  * declares every field with its default, type and description;
  * validates values at start-up and in a set-parameters callback that rejects bad values with a
    reason (wrong type, out of range, not a choice);
  * returns a live dataclass instance that the callback keeps up to date.
The same dataclass is what the static launch tests compare parameter files against, so a parameter
file can only name parameters the node really declares.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Optional, Type, TypeVar

from chef_contract.config import ConfigError, _check_field, _coerce

T = TypeVar('T')


def param_names(cls: Type[Any]) -> set:
    return {f.name for f in dataclasses.fields(cls)}


def _descriptor(f: dataclasses.Field):
    from rcl_interfaces.msg import ParameterDescriptor
    meta = f.metadata or {}
    text = meta.get('help', '')
    extra = []
    if 'min' in meta:
        extra.append(f'min {meta["min"]}')
    if 'max' in meta:
        extra.append(f'max {meta["max"]}')
    if 'choices' in meta:
        extra.append(f'one of {list(meta["choices"])}')
    if extra:
        text = f'{text} ({", ".join(extra)})'
    return ParameterDescriptor(description=text)


_EMPTY_LIST_TYPES = {typing.List[str]: 'STRING_ARRAY', typing.List[float]: 'DOUBLE_ARRAY',
                     typing.List[int]: 'INTEGER_ARRAY', typing.List[bool]: 'BOOL_ARRAY'}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ConfigError(f'parameter {f.name} needs a default')


def declare_params(node, cls: Type[T], on_change: Optional[Callable[[T], None]] = None) -> T:
    """Declare the fields of dataclass `cls` as parameters of `node`; return the live instance."""
    from rcl_interfaces.msg import SetParametersResult
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for name, f in fields.items():
        default = _default(f)
        if isinstance(default, tuple):
            default = list(default)
        empty_list_type = _EMPTY_LIST_TYPES.get(hints[name]) if default == [] else None
        if empty_list_type is not None:
            # An empty list default would declare a BYTE_ARRAY and refuse every override: declare the
            # element type instead (the value stays unset until a launch/chef run override gives one).
            from rclpy.parameter import Parameter
            p = node.declare_parameter(name, getattr(Parameter.Type, empty_list_type), _descriptor(f))
            value = [] if p.value is None else p.value
        else:
            p = node.declare_parameter(name, default, _descriptor(f))
            value = p.value
        values[name] = _validated(name, value, hints[name], f)
    instance = cls(**values)

    def callback(params):
        updates = {}
        for p in params:
            if p.name not in fields:
                continue        # parameters of other layers (use_sim_time, qos overrides...)
            try:
                updates[p.name] = _validated(p.name, p.value, hints[p.name], fields[p.name])
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        for k, v in updates.items():
            setattr(instance, k, v)
        if updates and on_change is not None:
            on_change(instance)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)
    return instance


def _validated(name: str, value: Any, tp: Any, f: dataclasses.Field) -> Any:
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        value = list(value.tolist() if hasattr(value, 'tolist') else value)
    origin = typing.get_origin(tp)
    if origin is tuple or tp is tuple:
        value = list(value) if isinstance(value, (list, tuple)) else value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    coerced = _coerce(value, tp, name)
    _check_field(f, coerced, name)
    return coerced
