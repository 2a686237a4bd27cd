"""dict <-> dataclass: plain YAML data read into the typed config sections, and written back.

:func:`from_dict` coerces every value to its field's type (``Optional``, ``List``, ``Tuple``, ``Dict``, nested
dataclasses; counts written as floats such as BasicSR's ``!!float 5e3`` become ints) and raises
:class:`~restore_core.train.config_errors.ConfigError` naming the key's path for an unknown key or a value of the
wrong type. A dataclass with an ``_EXTRA = "params"`` attribute keeps the keys it does not declare in that field
(open-ended sections: a dataset's, network's or metric's own arguments); :func:`to_plain` folds them back.
"""
from __future__ import annotations

import copy
import dataclasses
import typing
from typing import Any, Dict, List, Mapping, Tuple, Union

from .config_errors import ConfigError


def _is_optional(tp: Any) -> Tuple[bool, Any]:
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, (args[0] if len(args) == 1 else Union[tuple(args)])
    return False, tp


def _coerce(value: Any, tp: Any, path: str) -> Any:
    optional, inner = _is_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{path}: must not be empty")
    tp = inner
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is Union:
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: {value!r} is not a {tp}")
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, arg, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # BasicSR writes !!float 5e3 for counts
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
            if f.is_integer():
                return int(f)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            return float(value)  # YAML 1.1 reads "2e-4" as a string
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def from_dict(cls: type, data: Any, path: str) -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``data``; ``path`` prefixes the keys in errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra_name = getattr(cls, "_EXTRA", None)
    kwargs: Dict[str, Any] = {}
    extra: Dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        sub = f"{path}.{key}" if path else key
        if key in fields and key != extra_name:
            kwargs[key] = _coerce(value, hints[key], sub)
        elif extra_name is not None:
            extra[key] = copy.deepcopy(value)
        else:
            raise ConfigError(f"{sub}: unknown key (valid keys here: {', '.join(sorted(fields))})")
    if extra_name is not None:
        explicit = data.get(extra_name) or {}
        kwargs[extra_name] = {**explicit, **extra} if isinstance(explicit, Mapping) else extra
    return cls(**kwargs)


def to_plain(obj: Any) -> Any:
    """Dataclasses, mappings and sequences as plain dicts and lists (``_EXTRA`` fields folded into their section)."""
    if dataclasses.is_dataclass(obj):
        out: Dict[str, Any] = {}
        extra_name = getattr(type(obj), "_EXTRA", None)
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name == extra_name:
                out.update(to_plain(v))
            else:
                out[f.name] = to_plain(v)
        return out
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj

