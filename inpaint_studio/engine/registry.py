"""Engines by name: the classical ones (registered at import) plus one deep engine per model
file found in the shipped and user model folders.

``list_engines()`` is what the app's selector and ``inpaint-studio fill --engine`` show: every
engine with whether it can run here and, if not, why (e.g. an architecture with no trained
weights yet).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from .base import Availability, Engine, EngineUnavailable

_FACTORIES: dict[str, Callable[[], Engine]] = {}
_CACHE: dict[tuple[str, str], Engine] = {}
_LOCK = threading.Lock()

# The shipped default deep model; when it cannot load the fallback is PatchMatch.
DEFAULT_DEEP_ENGINE = "deepfill_v2"
FALLBACK_ENGINE = "patchmatch"


# Appended to the title of a model whose card says it is still being trained.
IN_TRAINING_MARK = " (in training)"


@dataclass(frozen=True)
class EngineInfo:
    """A row of the engine selector.

    in_training: the model's card says ``"in_training": true``; such a model is listed (and
    can be chosen) but is never the default.
    """

    name: str
    title: str
    description: str
    kind: str
    availability: Availability
    in_training: bool = False
    uses_sketch: bool = False
    has_attention: bool = False


def register(name: str) -> Callable[[Callable[[], Engine]], Callable[[], Engine]]:
    """Decorator registering a zero-argument engine factory under ``name``."""

    def deco(factory: Callable[[], Engine]) -> Callable[[], Engine]:
        _FACTORIES[name] = factory
        return factory

    return deco


def _ensure_builtin() -> None:
    # Importing the modules registers their engines; kept lazy so that importing the
    # registry stays cheap (no torch import for a classical-only CLI run).
    importlib.import_module(".classical", __package__)


def _deep_engines(device: str) -> list[Engine]:
    try:
        from .deep import discover_deep_engines
    except ModuleNotFoundError as exc:
        # Only a missing torch makes the deep engines optional; any other import failure is a
        # broken installation and must surface, not silently empty the engine list.
        if exc.name != "torch":
            raise
        return []
    return discover_deep_engines(device=device)


def _classical(name: str) -> Engine:
    """The cached instance of the classical engine registered as ``name``."""
    key = (name, "any")
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _FACTORIES[name]()
        return _CACHE[key]


def all_engines(device: str = "auto") -> list[Engine]:
    """Classical engines first, then deep engines (available or not)."""
    _ensure_builtin()
    engines: list[Engine] = []
    for name in _FACTORIES:
        engines.append(_classical(name))
    engines.extend(_deep_engines(device))
    return engines


def list_engines(device: str = "auto") -> list[EngineInfo]:
    """Every engine with its availability here, for selectors and ``--help`` text.

    A model still in training (its card's ``in_training``) gets :data:`IN_TRAINING_MARK`
    on its title, unless the title already says so, and its card's ``figures`` in its
    description.
    """
    return [engine_info(e) for e in all_engines(device)]


def engine_info(engine: Engine) -> EngineInfo:
    """The selector row of one engine (see :func:`list_engines`)."""
    title = engine.title or engine.name
    description = engine.description
    card = getattr(engine, "card", None)
    in_training = bool(getattr(card, "in_training", False))
    if in_training:
        if "in training" not in title.lower():
            title += IN_TRAINING_MARK
        figures = getattr(card, "figures", "")
        if figures and figures not in description:
            description = f"{description} ({figures})" if description else figures
    return EngineInfo(engine.name, title, description, engine.kind, engine.availability(),
                      in_training, engine.uses_sketch, engine.has_attention)


def get_engine(name: str, device: str = "auto") -> Engine:
    """The engine called ``name``; raises :class:`EngineUnavailable` naming the known ones."""
    _ensure_builtin()
    # A classical engine needs no model discovery (and so no torch import): look it up first.
    if name in _FACTORIES:
        engines = {name: _classical(name)}
    else:
        engines = {e.name: e for e in all_engines(device)}
    if name not in engines:
        known = ", ".join(sorted(engines)) or "none"
        raise EngineUnavailable(f"unknown engine {name!r}; known engines: {known}")
    engine = engines[name]
    available = engine.availability()
    if not available:
        raise EngineUnavailable(f"engine {name!r} is not available: {available.reason}")
    return engine


def default_engine_among(infos: Iterable[EngineInfo]) -> str:
    """The default among listed engines: the shipped deep model when it is listed, available
    and not still in training, else PatchMatch."""
    for info in infos:
        if info.name == DEFAULT_DEEP_ENGINE and info.availability and not info.in_training:
            return info.name
    return FALLBACK_ENGINE


def default_engine_name(device: str = "auto") -> str:
    """The shipped deep model when it loads here and is not in training, else PatchMatch."""
    return default_engine_among(list_engines(device))


def clear_cache() -> None:
    """Forget constructed engines (after new model files appear)."""
    with _LOCK:
        _CACHE.clear()
    try:
        from .deep import clear_deep_cache
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        return
    clear_deep_cache()
