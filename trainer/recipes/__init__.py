"""Training recipes by architecture: ``get_recipe("deepfill_v2")`` returns its ``Recipe``.

Importing this package imports every module in it, so each recipe module registers itself.
"""

import importlib
import pkgutil

from .base import Batch, Recipe, get_recipe, recipe_names, register_recipe

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Batch", "Recipe", "get_recipe", "recipe_names", "register_recipe"]
