"""Generators and discriminators built from ``layers``, with a registry by name.

``import inpaint_studio.networks`` registers every architecture; then
``build("deepfill_v2", **args)`` returns a generator.
"""

import importlib
import pkgutil

from .base import InpaintGenerator
from .registry import (
    ArchInfo,
    arch_info,
    build,
    build_discriminator,
    discriminator_names,
    generator_names,
    register_discriminator,
    register_generator,
)

# Importing every module of this package registers its architectures (each module holds one
# concept and registers what it defines), so adding an architecture touches no shared list.
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "InpaintGenerator", "ArchInfo", "arch_info", "build", "build_discriminator",
    "discriminator_names", "generator_names", "register_discriminator", "register_generator",
]
