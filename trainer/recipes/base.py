"""The contract between the training loop (``trainer.loop``) and per-architecture recipes.

A recipe knows how one architecture is trained: which generator and discriminators to
build, the paper's Adam settings, how to run the generator on a batch and the generator and
discriminator losses. The loop owns everything else (optimizers, AMP, EMA, DDP, checkpoints).

Batch layout (``Batch``), all on the training device:

* ``"image"``: float ``(B, 3, H, W)`` in ``[-1, 1]`` (the ground truth).
* ``"mask"``: float ``(B, 1, H, W)``, 1 = hole, 0 = known.
* ``"sketch"``: float ``(B, 1, H, W)`` in ``{0, 1}`` (all zeros when dropped or absent).

Register a recipe with ``@register_recipe("arch")``; every module in ``trainer/recipes/`` is
imported by ``trainer.recipes`` so registering touches no shared list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from torch import nn

from inpaint_studio import networks
from inpaint_studio.networks import InpaintGenerator

Batch = dict[str, torch.Tensor]


class Recipe(ABC):
    """How to train one architecture.

    arch: generator registry name (``inpaint_studio.networks.build``), e.g. ``"deepfill_v2"``.
    needs_vgg: True when the losses need VGG features; the loop then loads ``--vgg-weights``
        (``networks/vgg.py``) and passes the network as ``vgg``, or stops at start.
    lr_g, lr_d, betas: the paper's Adam settings (the loop may scale the learning rates from
        the command line).
    d_steps_per_g: discriminator updates per generator update.
    """

    arch: str
    needs_vgg: bool = False
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    d_steps_per_g: int = 1

    def __init__(self, cfg: Any, device: torch.device, vgg: nn.Module | None) -> None:
        """cfg: the run's ``TrainConfig``; device: where batches live; vgg: frozen feature
        network in eval mode when ``needs_vgg``, else None."""
        if self.needs_vgg and vgg is None:
            raise ValueError(f"the {self.arch} recipe needs VGG-16 features (--vgg-weights)")
        self.cfg = cfg
        self.device = device
        self.vgg = vgg

    def build_generator(self, gen_args: dict[str, Any]) -> InpaintGenerator:
        """A fresh generator: ``inpaint_studio.networks.build(self.arch, **gen_args)``."""
        return networks.build(self.arch, **gen_args)

    @property
    def trains_discriminator(self) -> bool:
        """Whether the loop updates the discriminators. False when the generator's loss does
        not read them (e.g. DeepFill v2 with ``--gan-weight 0``): their forward and backward
        passes, about 40 % of a CPU step, are then skipped and their weights carried on as they
        are. Default: True."""
        return True

    def prepare_generator(self, G: InpaintGenerator) -> None:
        """Adjust ``G`` in place for this run's training before its optimizer is made: the
        loop calls it on every generator, built by :meth:`build_generator`, loaded by
        ``--init`` or rebuilt by ``--resume`` (weights are loaded after it on resume). The
        default changes nothing."""

    @abstractmethod
    def build_discriminators(self) -> nn.ModuleDict:
        """The discriminators by name; may be empty (PConv trains without a GAN)."""

    @abstractmethod
    def run_generator(self, G: nn.Module, batch: Batch) -> dict[str, torch.Tensor | tuple]:
        """Run ``G`` on the batch. Returns ``{"stages": (out_stage0, ...), ...extras}``: each
        stage output raw (not composited) ``(B, 3, H, W)`` in ``[-1, 1]``, in
        ``G.stage_names`` order; the last stage is the final image. Extras (e.g. CSA
        features) are free-form values the losses of this recipe use: tensors (the loop
        detaches them for :meth:`d_loss`) or other objects (passed to both losses as they are,
        e.g. CSA's ground-truth VGG features computed once per step).

        ``G`` may be wrapped (DDP, ``torch.compile``): call it, do not read its attributes.
        The discriminators in ``D`` below may be wrapped likewise."""

    @abstractmethod
    def d_loss(
        self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Discriminator loss (scalar tensor to minimise) and named parts for logging (floats
        or detached 0-dim tensors: the loop reads tensors only when it logs, sparing a GPU
        sync per step). ``out`` is already detached by the loop. Not called when ``D`` is
        empty."""

    @abstractmethod
    def g_loss(
        self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator loss (scalar tensor to minimise) and named parts for logging (floats or
        detached 0-dim tensors, as in :meth:`d_loss`). ``D``'s weights are frozen here."""


_RECIPES: dict[str, type[Recipe]] = {}


def register_recipe(arch: str) -> Callable[[type[Recipe]], type[Recipe]]:
    """Class decorator: register ``cls`` as the recipe for generator ``arch``."""

    def deco(cls: type[Recipe]) -> type[Recipe]:
        if arch in _RECIPES:
            raise ValueError(f"recipe for {arch!r} registered twice")
        cls.arch = arch
        _RECIPES[arch] = cls
        return cls

    return deco


def get_recipe(arch: str) -> type[Recipe]:
    """The recipe class registered for ``arch``."""
    if arch not in _RECIPES:
        known = ", ".join(sorted(_RECIPES)) or "none"
        raise KeyError(f"no training recipe for architecture {arch!r}; known: {known}")
    return _RECIPES[arch]


def recipe_names() -> list[str]:
    """Architectures that have a training recipe, sorted."""
    return sorted(_RECIPES)
