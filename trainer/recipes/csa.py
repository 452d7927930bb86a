"""Training recipe of CSA (Liu et al., "Coherent Semantic Attention for Image Inpainting",
ICCV 2019).

Generator loss: L1 reconstruction of the rough and the refined output (whole image), the
consistency loss (squared L2 of the CSA layer's output and of the matching decoder layer to
VGG-16 relu4_3 of the ground truth, on hole positions, gradients reaching the network), and
relativistic average LSGAN losses of two discriminators: a 70x70 PatchGAN on the composite
image and the feature-patch discriminator on VGG-16 relu3_3 features of the composite.

Weights (our reading): reconstruction 1, consistency 0.01, adversarial 0.002. The reference
code weighs L1 by 100 and the GAN term by 0.2, i.e. adversarial/L1 = 0.002, which we keep;
0.01 for the consistency term keeps its relu4_3-scale squared errors from swamping the L1.
Adam lr 2e-4, betas (0.5, 0.999) (the reference's pix2pix settings).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inpaint_studio.networks import build_discriminator

from .. import losses
from .base import Batch, Recipe, register_recipe

VGG_FEATURE_LAYER = "relu3_3"  # feature-patch discriminator input (256 channels, 1/4 size)
VGG_CONSISTENCY_LAYER = "relu4_3"


class GroundTruthFeatures:
    """VGG-16 features of a batch's ground truth, computed once on first use.

    The D loss (real features for the feature-patch discriminator) and the G loss (the same,
    plus the consistency target) of one step both need them; :meth:`CsaRecipe.run_generator`
    puts one of these in its output so the two share a single VGG pass, and validation, which
    never asks, pays none. ``image``: ``(B, 3, H, W)`` in ``[-1, 1]``.
    """

    def __init__(self, vgg: nn.Module, image: torch.Tensor) -> None:
        self.vgg = vgg
        self.image = image
        self._features: dict[str, torch.Tensor] | None = None

    def __call__(self) -> dict[str, torch.Tensor]:
        """``{"relu1_2": ..., "relu4_3": ...}`` without autograd history."""
        if self._features is None:
            with torch.no_grad():
                self._features = self.vgg(self.image)
        return self._features


@register_recipe("csa")
class CsaRecipe(Recipe):
    needs_vgg = True
    lr_g = 2e-4
    lr_d = 2e-4
    betas = (0.5, 0.999)
    d_steps_per_g = 1

    reconstruction_weight = 1.0
    consistency_weight = 0.01
    adversarial_weight = 0.002

    def build_discriminators(self) -> nn.ModuleDict:
        return nn.ModuleDict({
            "patch": build_discriminator("patchgan70", in_channels=3),
            "feature": build_discriminator("feature_patch", in_channels=256),
        })

    def run_generator(self, G: nn.Module, batch: Batch) -> dict[str, Any]:
        coarse, refined, csa_feat, decoder_feat = G(batch["image"], batch["mask"], None, with_features=True)
        return {"stages": (coarse, refined), "csa_feat": csa_feat, "decoder_feat": decoder_feat,
                "gt_features": GroundTruthFeatures(self.vgg, batch["image"])}

    @staticmethod
    def _composite(batch: Batch, out: dict[str, Any]) -> torch.Tensor:
        mask = batch["mask"]
        return out["stages"][-1] * mask + batch["image"] * (1 - mask)

    def d_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        gt, fake = batch["image"], self._composite(batch, out)
        real_feat = out["gt_features"]()[VGG_FEATURE_LAYER]
        with torch.no_grad():
            fake_feat = self.vgg(fake)[VGG_FEATURE_LAYER]
        patch = losses.ralsgan_d_loss(D["patch"](gt), D["patch"](fake))
        feature = losses.ralsgan_d_loss(D["feature"](real_feat), D["feature"](fake_feat))
        return patch + feature, {"d_patch": patch.detach(), "d_feature": feature.detach()}

    def g_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        gt, mask = batch["image"], batch["mask"]
        coarse, refined = out["stages"]
        fake = self._composite(batch, out)
        reconstruction = losses.l1(coarse, gt) + losses.l1(refined, gt)

        gt_feats = out["gt_features"]()
        consistency = losses.consistency_loss(
            out["csa_feat"], out["decoder_feat"], gt_feats[VGG_CONSISTENCY_LAYER], mask
        )
        fake_feat = self.vgg(fake)[VGG_FEATURE_LAYER]  # gradients flow through the frozen VGG
        with torch.no_grad():
            real_patch = D["patch"](gt)
            real_feature = D["feature"](gt_feats[VGG_FEATURE_LAYER])
        adversarial = losses.ralsgan_g_loss(real_patch, D["patch"](fake)) + losses.ralsgan_g_loss(
            real_feature, D["feature"](fake_feat)
        )
        total = (
            self.reconstruction_weight * reconstruction
            + self.consistency_weight * consistency
            + self.adversarial_weight * adversarial
        )
        return total, {
            "l1": reconstruction.detach(),
            "consistency": consistency.detach(),
            "g_adv": adversarial.detach(),
        }
