"""Training recipe of the partial-convolution U-Net (Liu et al., ECCV 2018). No discriminator.

Loss (paper eq. 7): valid L1 x 1 + hole L1 x 6 + perceptual x 0.05 + style x 120 (each on the
raw output and on the composite) + total variation x 0.1 (on the composite, over the hole
dilated by one pixel). VGG-16 layers as the paper: pool1, pool2, pool3 (max-pooled relu1_2,
relu2_2, relu3_3).

Adam lr 2e-4, default betas (the paper's initial training). Fine-tuning phase of the paper
(lr 5e-5 and frozen encoder batch norm): ``--freeze-enc-bn`` makes :meth:`prepare_generator`
freeze it, also for a model loaded by ``--init`` or ``--resume``; give the rate with
``--lr-g 5e-5``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.networks import InpaintGenerator

from .. import losses
from .base import Batch, Recipe, register_recipe

VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3")


@register_recipe("pconv")
class PConvRecipe(Recipe):
    needs_vgg = True
    lr_g = 2e-4
    lr_d = 0.0  # no discriminator
    betas = (0.9, 0.999)

    valid_weight = 1.0
    hole_weight = 6.0
    perceptual_weight = 0.05
    style_weight = 120.0
    tv_weight = 0.1

    def prepare_generator(self, G: InpaintGenerator) -> None:
        """``--freeze-enc-bn``: the paper's fine-tuning phase freezes the encoder's batch norm
        (running statistics and affine parameters) so holes do not skew its statistics."""
        if self.cfg.freeze_enc_bn:
            G.freeze_encoder_bn(True)

    def build_discriminators(self) -> nn.ModuleDict:
        return nn.ModuleDict()

    def run_generator(self, G: nn.Module, batch: Batch) -> dict[str, Any]:
        return {"stages": tuple(G(batch["image"], batch["mask"]))}

    def d_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        raise RuntimeError("pconv trains without a discriminator; the loop must not ask for d_loss")

    def _pools(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats = self.vgg(images)
        return [F.max_pool2d(feats[name], 2) for name in VGG_LAYERS]

    def g_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        gt, mask = batch["image"], batch["mask"]
        (raw,) = out["stages"]
        comp = raw * mask + gt * (1 - mask)
        pixel = losses.hole_valid_l1(raw, gt, mask, self.hole_weight, self.valid_weight)

        # One VGG pass for output and composite; the ground truth needs no graph.
        out_pools = self._pools(torch.cat([raw, comp]))
        with torch.no_grad():
            gt_pools = self._pools(gt)
        raw_pools = [p.chunk(2)[0] for p in out_pools]
        comp_pools = [p.chunk(2)[1] for p in out_pools]
        perceptual = losses.perceptual_loss(raw_pools, gt_pools) + losses.perceptual_loss(comp_pools, gt_pools)
        style = losses.style_loss(raw_pools, gt_pools) + losses.style_loss(comp_pools, gt_pools)
        tv = losses.tv_loss(comp, mask)
        total = pixel + self.perceptual_weight * perceptual + self.style_weight * style + self.tv_weight * tv
        return total, {
            "l1_hole_valid": pixel.detach(),
            "perceptual": perceptual.detach(),
            "style": style.detach(),
            "tv": tv.detach(),
        }
