"""Config files: YAML composed over its ``base:`` files, a profile's overrides applied, presets found by name.

``base:`` (or ``_base_:``) names one or more files a file overrides (relative path, or a preset name such as
``mambair/_base_sr``); dicts are merged key by key, lists and scalars replaced; a dict holding ``_delete_: true``
replaces the inherited one. ``profiles: {quick: {...}, cpu: {...}}`` sections are applied by
``load_config(..., profile=...)``. Presets live in ``restore_core/configs/<arch>/<task>.yml``.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ..fsutil import atomic_write_text
from ..profiles import PROFILES
from .config_errors import ConfigError
from .config_overrides import apply_overrides, env_overrides
from .config_schema import TrainConfig, config_from_dict

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def deep_merge(base: Dict[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    """``over`` merged into a copy of ``base``: dicts recursively, everything else replaced. A dict with
    ``_delete_: true`` replaces the base's dict instead of merging into it (mmcv's convention)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and v.get("_delete_") is True:
            out[k] = {kk: copy.deepcopy(vv) for kk, vv in v.items() if kk != "_delete_"}
        elif isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)  # nested _delete_ markers stay until the dict is merged onto something
    return out


def strip_delete_markers(d: Any) -> Any:
    """``d`` without the ``_delete_`` keys left over once every base and profile has been merged."""
    if isinstance(d, Mapping):
        return {k: strip_delete_markers(v) for k, v in d.items() if k != "_delete_"}
    if isinstance(d, list):
        return [strip_delete_markers(v) for v in d]
    return d


def resolve_config_path(name_or_path: Union[str, Path], relative_to: Optional[Path] = None) -> Path:
    """A config file from a path, a path relative to ``relative_to``, or a preset name (``mambair/sr_x2``)."""
    p = Path(name_or_path)
    candidates = []
    if relative_to is not None and not p.is_absolute():
        candidates.append(relative_to / p)
    candidates.append(p)
    for c in list(candidates):
        if c.suffix not in (".yml", ".yaml"):
            candidates += [c.with_name(c.name + ".yml"), c.with_name(c.name + ".yaml")]
    candidates += [CONFIG_DIR / p, CONFIG_DIR / (str(p) + ".yml")]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"config {str(name_or_path)!r} not found (neither a file nor a preset; presets: "
                            f"{', '.join(list_configs()) or 'none'})")


def list_configs() -> List[str]:
    """The shipped preset names (``arch/task``), without the ``_base`` files."""
    if not CONFIG_DIR.is_dir():
        return []
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yml")
                  if not any(part.startswith("_") for part in p.relative_to(CONFIG_DIR).parts))


def read_yaml_composed(path: Path, _seen: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    """The YAML at ``path`` merged over its ``base:`` / ``_base_:`` file(s)."""
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular base: {' -> '.join(map(str, _seen + (path,)))}")
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    bases = data.pop("base", None)
    bases2 = data.pop("_base_", None)
    if bases is not None and bases2 is not None:
        raise ConfigError(f"{path}: use either base or _base_, not both")
    bases = bases if bases is not None else bases2
    if bases is None:
        return data
    merged: Dict[str, Any] = {}
    for b in [bases] if isinstance(bases, str) else list(bases):
        merged = deep_merge(merged, read_yaml_composed(resolve_config_path(b, path.parent), _seen + (path,)))
    return deep_merge(merged, data)


def load_config(name_or_path: Union[str, Path, Mapping[str, Any]], profile: Optional[str] = None,
                overrides: Sequence[str] = (), data_root: Optional[str] = None) -> TrainConfig:
    """Read a config: a preset name (``"mambair/sr_x2"``), a YAML path, or a dict in the same layout.

    ``profile`` (quick / cpu / full) applies the file's ``profiles.<profile>`` section (a file with profile
    sections must have the one asked for, except full, the file itself); ``overrides`` are ``key.sub=value``
    strings applied next, then those in ``$RESTORE_CORE_CONFIG_OVERRIDES`` (one per line or separated by ";",
    applied to every config this process loads: a dry run shrinks a profile this way, see
    :mod:`restore_core.book.dry_run`); ``data_root`` (else ``$RESTORE_CORE_DATA_ROOT``) replaces the config's
    data root.
    """
    if isinstance(name_or_path, Mapping):
        raw = copy.deepcopy(dict(name_or_path))
        source = None
    else:
        path = resolve_config_path(name_or_path)
        raw = read_yaml_composed(path)
        source = str(path)
    profiles = raw.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError("profiles: expected a mapping of profile name -> overrides")
    for p in profiles:
        if p not in PROFILES:
            raise ConfigError(f"profiles.{p}: unknown profile (use {', '.join(PROFILES)})")
    if profile is not None:
        if profile not in PROFILES:
            raise ConfigError(f"profile must be one of {PROFILES}, got {profile!r}")
        if profiles and profile != "full" and profile not in profiles:
            raise ConfigError(f"config {name_or_path!r} has no {profile!r} profile (it has: "
                              f"{', '.join(profiles) or 'none'}); add a profiles.{profile} section")
        raw = deep_merge(raw, profiles.get(profile) or {})
        raw["profile"] = profile
    raw = strip_delete_markers(raw)
    apply_overrides(raw, overrides)
    apply_overrides(raw, env_overrides())
    root = data_root or os.environ.get("RESTORE_CORE_DATA_ROOT")
    if root:
        raw["data_root"] = root
    if source is not None:
        raw["source"] = source
    return config_from_dict(raw)


def dump_config(cfg: TrainConfig, path: Union[str, Path]) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
