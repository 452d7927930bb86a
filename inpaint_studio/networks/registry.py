"""Architectures by name: ``build("deepfill_v2", **args)`` returns a generator, and
``build_discriminator(name, **args)`` a discriminator.

A module registers its classes with the decorators below; ``inpaint_studio.networks``
imports every architecture module so the registry is complete after ``import
inpaint_studio.networks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .base import InpaintGenerator


@dataclass(frozen=True)
class ArchInfo:
    """A registered generator: its name, class and a one-line description."""

    name: str
    cls: type[InpaintGenerator]
    description: str


_GENERATORS: dict[str, ArchInfo] = {}
_DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {}


def register_generator(name: str, description: str) -> Callable[[type], type]:
    """Class decorator: register a generator class under ``name``."""

    def deco(cls: type[InpaintGenerator]) -> type[InpaintGenerator]:
        if name in _GENERATORS:
            raise ValueError(f"generator {name!r} registered twice")
        _GENERATORS[name] = ArchInfo(name, cls, description)
        return cls

    return deco


def register_discriminator(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a discriminator class or factory under ``name``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _DISCRIMINATORS:
            raise ValueError(f"discriminator {name!r} registered twice")
        _DISCRIMINATORS[name] = factory
        return factory

    return deco


def build(name: str, **args: Any) -> InpaintGenerator:
    """Build the generator ``name`` with ``args``; records both on the instance."""
    if name not in _GENERATORS:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(_GENERATORS))}")
    model = _GENERATORS[name].cls(**args)
    model.arch = name
    model.arch_args = dict(args)
    return model


def build_discriminator(name: str, **args: Any) -> nn.Module:
    """Build the discriminator ``name`` with ``args``."""
    if name not in _DISCRIMINATORS:
        raise KeyError(
            f"unknown discriminator {name!r}; known: {', '.join(sorted(_DISCRIMINATORS))}"
        )
    return _DISCRIMINATORS[name](**args)


def generator_names() -> list[str]:
    return sorted(_GENERATORS)


def discriminator_names() -> list[str]:
    return sorted(_DISCRIMINATORS)


def arch_info(name: str) -> ArchInfo:
    if name not in _GENERATORS:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(_GENERATORS))}")
    return _GENERATORS[name]
