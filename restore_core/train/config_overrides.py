"""``key.sub=value`` overrides of a config's plain data (values parsed as YAML), from the command line or from
``$RESTORE_CORE_CONFIG_OVERRIDES``."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence, Tuple

import yaml

from .config_errors import ConfigError


def parse_override(item: str) -> Tuple[List[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.sub=value")
    key, raw = item.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return keys, value


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` overrides in place (value parsed as YAML: numbers, lists, true/false, ~)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[:i + 1])} is not a section")
            node = nxt
        node[keys[-1]] = value
    return data


OVERRIDES_ENV = "RESTORE_CORE_CONFIG_OVERRIDES"


def env_overrides() -> List[str]:
    """The overrides in ``$RESTORE_CORE_CONFIG_OVERRIDES`` (lines or ";"-separated ``key.sub=value`` items)."""
    raw = os.environ.get(OVERRIDES_ENV, "")
    return [item.strip() for line in raw.splitlines() for item in line.split(";") if item.strip()]

