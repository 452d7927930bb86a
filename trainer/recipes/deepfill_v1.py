"""Training recipe of DeepFill v1 (Yu et al., "Generative Image Inpainting with Contextual
Attention", CVPR 2018).

Generator loss (weights from the reference configuration): spatially discounted L1 on the hole
(coarse x 1.2, refined x 1), plain L1 on the known pixels normalised by their share
("ae loss", coarse x 1.2, refined x 1), each group weighted 1.2, plus 0.001 x the WGAN
generator loss of the local and global critics. The discount is ``gamma ** distance`` to the
nearest known pixel: ``gamma`` is ``--discount-gamma``, 0.99 as the paper by default (the
reference code used 0.9).

Critics (WGAN-GP, lambda 10, gradient penalty restricted to the hole as the reference):
a global critic on the whole composite image and a local critic on the hole's bounding box
(per sample; free-form holes get the box around all hole pixels) cropped and resized to half
the training size (128 at 256, as the reference's fixed local patch).

Adam lr 1e-4, betas (0.5, 0.9). Five critic steps per generator step: the WGAN-GP paper's
n_critic and the reference trainer's five discriminator iterations; a Wasserstein critic must
stay near-optimal for its score differences to be a useful distance.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inpaint_studio.networks import build_discriminator

from .. import losses
from .base import Batch, Recipe, register_recipe


def hole_boxes(mask: torch.Tensor) -> torch.Tensor:
    """Bounding box of each sample's hole: mask ``(B, 1, H, W)`` (1 = hole) -> float
    ``(B, 4)`` as ``(y0, x0, y1, x1)`` pixel edges (end exclusive). A sample without a hole
    gets the whole image."""
    b, _, h, w = mask.shape
    hole = mask[:, 0] > 0.5
    rows, cols = hole.any(dim=2), hole.any(dim=1)  # (B, H), (B, W)

    def span(occupied: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = occupied.float().argmax(dim=1)
        last = size - occupied.flip(1).float().argmax(dim=1)
        empty = ~occupied.any(dim=1)
        return torch.where(empty, 0, first), torch.where(empty, size, last)

    y0, y1 = span(rows, h)
    x0, x1 = span(cols, w)
    return torch.stack([y0, x0, y1, x1], dim=1).float()


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Crop each sample of ``x`` ``(B, C, H, W)`` to its box (:func:`hole_boxes` layout) and
    resize it to ``size x size`` in one differentiable resampling -> ``(B, C, size, size)``."""
    b, _, h, w = x.shape
    y0, x0, y1, x1 = boxes.to(x.dtype).unbind(1)
    # affine_grid maps output [-1, 1] to input normalised coordinates (align_corners=False:
    # -1 and 1 are the outer pixel edges), so box edges map to 2 * edge / size - 1.
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = (x1 - x0) / w
    theta[:, 0, 2] = (x0 + x1) / w - 1
    theta[:, 1, 1] = (y1 - y0) / h
    theta[:, 1, 2] = (y0 + y1) / h - 1
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


@register_recipe("deepfill_v1")
class DeepFillV1Recipe(Recipe):
    lr_g = 1e-4
    lr_d = 1e-4
    betas = (0.5, 0.9)
    d_steps_per_g = 5

    coarse_weight = 1.2  # reference COARSE_L1_ALPHA: the coarse stage counts 1.2, refined 1
    l1_weight = 1.2  # reference L1_LOSS_ALPHA (discounted hole L1)
    ae_weight = 1.2  # reference AE_LOSS_ALPHA (known-pixel L1)
    gan_weight = 0.001  # reference GAN_LOSS_ALPHA
    global_weight = 1.0  # reference GLOBAL_WGAN_LOSS_ALPHA
    gp_lambda = 10.0

    def __init__(self, cfg: Any, device: torch.device, vgg: nn.Module | None) -> None:
        super().__init__(cfg, device, vgg)
        self.size = int(cfg.size)
        self.local_size = self.size // 2
        if self.local_size % 16:
            raise ValueError(f"deepfill_v1 needs --size a multiple of 32 (its local critic "
                             f"sees half the size through 4 stride-2 convs), got {self.size}")
        self.gamma = float(cfg.discount_gamma)
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"--discount-gamma must be in (0, 1], got {self.gamma}")

    def build_discriminators(self) -> nn.ModuleDict:
        return nn.ModuleDict({
            "global": build_discriminator("wgan_global", image_size=self.size),
            "local": build_discriminator("wgan_local", image_size=self.local_size),
        })

    def run_generator(self, G: nn.Module, batch: Batch) -> dict[str, Any]:
        return {"stages": tuple(G(batch["image"], batch["mask"]))}

    def _views(self, batch: Batch, out: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Real and fake (composite) images, whole and local crops, and the crops' masks."""
        gt, mask = batch["image"], batch["mask"]
        fake = out["stages"][-1] * mask + gt * (1 - mask)
        boxes = hole_boxes(mask)
        return {
            "real": gt, "fake": fake, "mask": mask,
            "real_local": crop_resize(gt, boxes, self.local_size),
            "fake_local": crop_resize(fake, boxes, self.local_size),
            "mask_local": crop_resize(mask, boxes, self.local_size, mode="nearest"),
        }

    def d_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        v = self._views(batch, out)
        parts = {}
        total = 0.0
        for name, real, fake, mask in (
            ("global", v["real"], v["fake"], v["mask"]),
            ("local", v["real_local"], v["fake_local"], v["mask_local"]),
        ):
            critic = D[name]
            wasserstein = losses.wgan_d_loss(critic(real), critic(fake))
            penalty = losses.wgan_gp_penalty(critic, real, fake, mask)
            total = total + wasserstein + self.gp_lambda * penalty
            parts[f"d_{name}"] = wasserstein.detach()
            parts[f"gp_{name}"] = penalty.detach()
        return total, parts

    def g_loss(self, D: nn.ModuleDict, batch: Batch, out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        gt, mask = batch["image"], batch["mask"]
        coarse, refined = out["stages"]
        weights = losses.spatial_discount(mask, self.gamma)
        hole_l1 = self.coarse_weight * losses.discounted_l1(coarse, gt, mask, weights=weights)
        hole_l1 = hole_l1 + losses.discounted_l1(refined, gt, mask, weights=weights)
        known = 1 - mask
        known_share = known.mean().clamp(min=1e-6)
        ae = (self.coarse_weight * ((coarse - gt).abs() * known).mean()
              + ((refined - gt).abs() * known).mean()) / known_share
        v = self._views(batch, out)
        adversarial = losses.wgan_g_loss(D["local"](v["fake_local"])) + self.global_weight * (
            losses.wgan_g_loss(D["global"](v["fake"]))
        )
        total = self.l1_weight * hole_l1 + self.ae_weight * ae + self.gan_weight * adversarial
        return total, {"l1_discounted": hole_l1.detach(), "l1_known": ae.detach(),
                       "g_adv": adversarial.detach()}
