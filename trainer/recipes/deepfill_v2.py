"""DeepFill v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019).

Generator: gated coarse + refine networks (``networks/deepfill_v2.py``). Discriminator:
SN-PatchGAN (``networks/sn_patchgan.py``) on the composited image, the mask and the sketch.

Losses, with the reference code's weights (``inpaint.yml``: ``l1_loss_alpha: 1``,
``gan_loss_alpha: 1``, ``ae_loss: True``):

* G: ``mean|x - coarse| + mean|x - refined|`` (plain L1 over the whole image, raw outputs,
  both stages weight 1) ``+ 1.0 * hinge_g(D(composite))``.
* D: hinge on real ``x`` versus the composite ``refined * m + x * (1 - m)``.

Choices of the reference we keep: the L1 is over the whole image (not hole-weighted, no
spatial discount, unlike DeepFill v1); D sees the composite, not the raw output; real and
fake go through D in one batch. Where we differ: the reference tiles the first sample's mask
for the whole batch as D's mask channel; we give each sample its own mask. The sketch channel
follows the reference's edge-guided variant (D sees the sketch too), with zeros where the
sketch was dropped. Adam lr 1e-4, betas (0.5, 0.999) for both networks, one D step per G step.

Options that depart from the reference, for sample efficiency on small compute (issue 11):
``--l1-hole-weight W`` weighs the hole's L1 W times the known pixels' (``losses.hole_valid_l1``
with weights W and 1, each a mean over all pixels; W = 1 is the reference's plain L1), and
``--gan-weight`` scales the hinge term (1 = reference). ``--d-translate P`` shifts every
discriminator input (real and fake, in D's and G's losses) by a random ``[-P, P]`` pixels
(``trainer.d_augment``; 0 = reference), against the stride-aligned grid the GAN term taught
the generator on our budget; ``--fm-weight`` adds pix2pixHD's feature matching (L1 between D's
block outputs for the composite and the photo, unshifted; with ``--gan-weight 0`` D is not
trained and serves as a fixed feature network). Neither removed that lattice (docs/training.md,
A/B 13). ``--spectral-weight`` adds ``losses.local_spectrum_loss`` on the composite: the
fill's local amplitude spectra against the photo's, phase-free, so detail is asked for without
the L1's demand that it sit exactly where the photo's was (A/B 14).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inpaint_studio import networks
from trainer import losses
from trainer.d_augment import random_translate, structure_view

from .base import Batch, Recipe, register_recipe

L1_WEIGHT = 1.0   # reference l1_loss_alpha, applied to each stage
GAN_WEIGHT = 1.0  # reference gan_loss_alpha


@register_recipe("deepfill_v2")
class DeepFillV2Recipe(Recipe):
    """SN-PatchGAN hinge + L1 on both stages (see the module docstring)."""

    lr_g = 1e-4
    lr_d = 1e-4
    betas = (0.5, 0.999)

    @property
    def gan_weight(self) -> float:
        return getattr(self.cfg, "gan_weight", GAN_WEIGHT)

    @property
    def trains_discriminator(self) -> bool:
        # Without an adversarial term nothing reads D: training it would be wasted work.
        return self.gan_weight > 0

    def build_discriminators(self) -> nn.ModuleDict:
        # RGB + mask + sketch: the sketch channel is all zeros when a sample has none.
        blur = bool(getattr(self.cfg, "d_blur", False))
        return nn.ModuleDict({"patch": networks.build_discriminator("sn_patchgan", in_channels=5,
                                                                    blur=blur)})

    def run_generator(self, G: nn.Module, batch: Batch) -> dict[str, Any]:
        return {"stages": tuple(G(batch["image"], batch["mask"], batch["sketch"]))}

    @staticmethod
    def _composite(batch: Batch, out: dict[str, Any]) -> torch.Tensor:
        m = batch["mask"]
        return out["stages"][-1] * m + batch["image"] * (1 - m)

    def _d_input(self, rgb: torch.Tensor, batch: Batch) -> torch.Tensor:
        """D's view: RGB, mask and sketch, ``(N, 5, H / s, W / s)`` with ``s`` = ``--d-scale``
        (:func:`structure_view`; the mask and sketch become their share of each cell)."""
        stacked = torch.cat([rgb, batch["mask"], batch["sketch"]], dim=1)
        return structure_view(stacked, getattr(self.cfg, "d_scale", 1))

    def _discriminate(self, D: nn.ModuleDict, d_input: torch.Tensor) -> torch.Tensor:
        """D's fp32 patch scores for ``d_input`` (``(N, 5, H, W)``), after the random
        translation of ``--d-translate`` (none at 0)."""
        shifted = random_translate(d_input, getattr(self.cfg, "d_translate", 0))
        return D["patch"](shifted).float()

    def d_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]):
        fake = self._composite(batch, out)
        real_fake = torch.cat([self._d_input(batch["image"], batch),
                               self._d_input(fake, batch)], dim=0)
        real_logits, fake_logits = self._discriminate(D, real_fake).chunk(2, dim=0)
        loss = losses.hinge_d_loss(real_logits, fake_logits)
        # Detached tensors, not .item(): the loop reads them only when it logs (no GPU sync
        # every step).
        return loss, {"d_hinge": loss.detach()}

    def _l1(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        hole_weight = getattr(self.cfg, "l1_hole_weight", 1.0)
        if hole_weight == 1.0:
            return losses.l1(out, batch["image"])
        return losses.hole_valid_l1(out, batch["image"], batch["mask"], hole_weight, 1.0)

    def g_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]):
        coarse, refined = (s.float() for s in out["stages"])
        l1_coarse = self._l1(coarse, batch)
        l1_refined = self._l1(refined, batch)
        total = L1_WEIGHT * (l1_coarse + l1_refined)
        gan_weight = self.gan_weight
        fm_weight = getattr(self.cfg, "fm_weight", 0.0)
        spectral_weight = getattr(self.cfg, "spectral_weight", 0.0)
        parts = {}
        # The composite and D's input only when a term reads them: the L1-only relay builds none.
        reads_d = fm_weight > 0 or gan_weight > 0
        composite = self._composite(batch, out) if reads_d or spectral_weight > 0 else None
        fake_input = self._d_input(composite, batch) if reads_d else None
        fake_logits = None
        if fm_weight > 0:
            # Real and fake unshifted: the term compares them feature by feature, in place.
            fake_features = D["patch"].features(fake_input)
            with torch.no_grad():
                real_features = D["patch"].features(self._d_input(batch["image"], batch))
            fm = torch.stack([(f.float() - r.float()).abs().mean()
                              for f, r in zip(fake_features, real_features)]).mean()
            total = total + fm_weight * fm
            parts["g_fm"] = fm.detach()
            if not getattr(self.cfg, "d_translate", 0):  # D's unshifted score is the last block
                fake_logits = fake_features[-1].flatten(1).float()
        if spectral_weight > 0:
            spectral = losses.local_spectrum_loss(composite.float(), batch["image"], batch["mask"])
            total = total + spectral_weight * spectral
            parts["g_spectral"] = spectral.detach()
        if gan_weight > 0:
            if fake_logits is None:
                fake_logits = self._discriminate(D, fake_input)
            gan = losses.hinge_g_loss(fake_logits)
            total = total + gan_weight * gan
        else:  # no adversarial term: spare the discriminator's forward and backward
            gan = torch.zeros((), device=total.device)
        return total, {"g_total": total.detach(), "l1_coarse": l1_coarse.detach(),
                       "l1_refined": l1_refined.detach(), "g_hinge": gan.detach(), **parts}
