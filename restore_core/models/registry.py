"""The architecture registry: paper presets and ablation switches in one place.

Each architecture registers its module class and its dataclass config (:func:`register_arch`); each named
variant (paper preset or ablation) is a small factory returning a config (:func:`register_preset`). Chapters and
configs build models by name instead of retyping numbers::

    model = build_model("mambair", preset="light_sr_x2", scan_directions=2)

A misspelled override raises (configs are dataclasses and model constructors take no ``**kwargs``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Type

from torch import nn


@dataclass
class ArchEntry:
    name: str
    model_cls: Type[nn.Module]
    config_cls: type
    paper: str = ""
    presets: Dict[str, Callable[[], Any]] = field(default_factory=dict)
    preset_docs: Dict[str, str] = field(default_factory=dict)


_ARCHS: Dict[str, ArchEntry] = {}


def register_arch(name: str, model_cls: Type[nn.Module], config_cls: type, paper: str = "") -> None:
    """Register an architecture: ``model_cls(**dataclasses.asdict(config_cls(...)))`` must build it."""
    if name in _ARCHS:
        raise KeyError(f"architecture {name!r} is already registered")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} must be a dataclass")
    _ARCHS[name] = ArchEntry(name, model_cls, config_cls, paper)


def register_preset(arch: str, preset: str, doc: str = "") -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorator registering a factory ``() -> config`` as ``arch``'s preset ``preset``."""

    def _add(fn: Callable[[], Any]) -> Callable[[], Any]:
        entry = _entry(arch)
        if preset in entry.presets:
            raise KeyError(f"preset {preset!r} of {arch!r} is already registered")
        entry.presets[preset] = fn
        entry.preset_docs[preset] = doc or (fn.__doc__ or "").strip().split("\n")[0]
        return fn

    return _add


def _entry(arch: str) -> ArchEntry:
    try:
        return _ARCHS[arch]
    except KeyError:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(sorted(_ARCHS)) or 'none'}") from None


def list_archs() -> List[str]:
    return sorted(_ARCHS)


def list_presets(arch: str) -> List[str]:
    return sorted(_entry(arch).presets)


def preset_doc(arch: str, preset: str) -> str:
    return _entry(arch).preset_docs.get(preset, "")


def list_switches(arch: str) -> Dict[str, Any]:
    """The config fields of ``arch`` (every constructor argument) with their defaults."""
    cls = _entry(arch).config_cls
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        out[f.name] = default
    return out


def get_config(arch: str, preset: Optional[str] = None, **overrides: Any) -> Any:
    """The config of ``arch``'s ``preset`` (or the config class's defaults) with ``overrides`` applied."""
    entry = _entry(arch)
    if preset is None:
        cfg = entry.config_cls()
    else:
        if preset not in entry.presets:
            raise KeyError(f"unknown preset {preset!r} for {arch!r}; known: {', '.join(sorted(entry.presets))}")
        cfg = entry.presets[preset]()
    names = {f.name for f in dataclasses.fields(cfg)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise TypeError(f"{arch}: unknown option(s) {bad}; valid options: {sorted(names)}")
    return dataclasses.replace(cfg, **overrides)


def build_model(arch: str, preset: Optional[str] = None, **overrides: Any) -> nn.Module:
    """Build ``arch`` from a preset (paper setting or ablation variant) plus keyword overrides."""
    cfg = get_config(arch, preset, **overrides)
    return _entry(arch).model_cls(**dataclasses.asdict(cfg))


def model_class(arch: str) -> Type[nn.Module]:
    return _entry(arch).model_cls


def config_class(arch: str) -> type:
    return _entry(arch).config_cls
