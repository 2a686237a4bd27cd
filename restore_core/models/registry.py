"""The architecture registry: paper presets and ablation switches in one place.

Each architecture registers its module class and its dataclass config (:func:`register_arch`); each named
variant (paper preset or ablation) is a small factory returning a config (:func:`register_preset`). Chapters and
configs build models by name instead of retyping numbers::

    model = build_model("mambair", preset="light_sr_x2", scan_directions=2)

A misspelled override raises TypeError. Every model is built from its config object: ``Model(config)`` or
``Model(**overrides)`` (applied to the config class's defaults), both through :func:`config_with`, so a config's
fields are written once, in its dataclass. The four architectures name their width ``embed_dim`` and their SR
factor ``upscale`` (BasicSR / MambaIR's names); a config class's ``RENAMED`` (``{old: new}``) still accepts the
earlier names (RNAN's ``n_feats`` / ``scale``, CU-Mamba's ``dim``) with a DeprecationWarning.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Type

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
    """Register an architecture: ``model_cls(config_cls(...))`` must build it."""
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
    return config_with(cfg, overrides, arch)


def renamed_fields(config_cls: type) -> Dict[str, str]:
    """``{earlier name: current name}`` of a config class's renamed fields (empty when none were renamed)."""
    return dict(getattr(config_cls, "RENAMED", {}))


def config_with(cfg: Any, overrides: Mapping[str, Any], owner: str) -> Any:
    """``cfg`` (a config dataclass) with ``overrides`` applied. Earlier field names (:func:`renamed_fields`) are
    mapped to the current ones with a DeprecationWarning; an unknown name raises TypeError naming the valid ones
    (``owner``: the architecture, for the message)."""
    renamed = renamed_fields(type(cfg))
    mapped: Dict[str, Any] = {}
    for key, value in overrides.items():
        if key in renamed:
            new = renamed[key]
            if new in overrides:
                raise TypeError(f"{owner}: {key!r} and {new!r} name the same option; give {new!r} only")
            warnings.warn(f"{owner}: option {key!r} is now called {new!r} (one name for width and scale across "
                          f"the architectures); the old name will go", DeprecationWarning, stacklevel=2)
            key = new
        mapped[key] = value
    names = {f.name for f in dataclasses.fields(cfg)}
    bad = sorted(set(mapped) - names)
    if bad:
        raise TypeError(f"{owner}: unknown option(s) {bad}; valid options: {sorted(names)}")
    return dataclasses.replace(cfg, **mapped)


def build_model(arch: str, preset: Optional[str] = None, **overrides: Any) -> nn.Module:
    """Build ``arch`` from a preset (paper setting or ablation variant) plus keyword overrides."""
    return _entry(arch).model_cls(get_config(arch, preset, **overrides))


def model_class(arch: str) -> Type[nn.Module]:
    return _entry(arch).model_cls


def config_class(arch: str) -> type:
    return _entry(arch).config_cls
