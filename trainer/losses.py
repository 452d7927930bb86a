"""Training losses of the inpainting papers, as plain functions on tensors.

Conventions (as in ``inpaint_studio.networks.base``): images are float ``(B, 3, H, W)`` in
``[-1, 1]``; masks are float ``(B, 1, H, W)`` with 1 = hole, 0 = known; discriminator outputs
("logits") are float tensors of any shape ``(B, ...)`` (a patch map or one score per sample).
Every loss returns a scalar tensor that carries gradients to its differentiable inputs.

Papers:
* DeepFill v1: Yu et al., "Generative Image Inpainting with Contextual Attention", CVPR 2018
  (spatially discounted L1, WGAN-GP with a masked gradient penalty).
* DeepFill v2: Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019
  (L1 + SN-PatchGAN hinge loss).
* PConv: Liu et al., "Image Inpainting for Irregular Holes Using Partial Convolutions",
  ECCV 2018 (hole/valid L1, perceptual, style, total variation).
* CSA: Liu et al., "Coherent Semantic Attention for Image Inpainting", ICCV 2019
  (consistency loss; relativistic average LSGAN from Jolicoeur-Martineau, ICLR 2019).
* WGAN-GP: Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
* Spectral losses: Durall et al., "Watch your Up-Convolution", CVPR 2020 (a local, 2-D,
  log-amplitude form here: :func:`local_spectrum_loss`).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Features = Mapping[str, Tensor] | Sequence[Tensor]


# --- reconstruction ----------------------------------------------------------------------


def l1(out: Tensor, gt: Tensor) -> Tensor:
    """Mean absolute error over all elements; ``out`` and ``gt`` of equal shape."""
    return (out - gt).abs().mean()


def hole_valid_l1(out: Tensor, gt: Tensor, mask: Tensor, hole_w: float, valid_w: float) -> Tensor:
    """``hole_w * L_hole + valid_w * L_valid`` (PConv, eq. 1-2; paper weights hole 6, valid 1).

    ``L_hole = || M * (out - gt) ||_1 / N`` and ``L_valid = || (1 - M) * (out - gt) ||_1 / N``
    with ``M`` the hole mask (1 = hole) and ``N`` the number of elements of ``gt`` (both terms
    share the whole-image normaliser, as in the paper, so small holes weigh little).
    out, gt: ``(B, C, H, W)``; mask: ``(B, 1, H, W)``.
    """
    diff = (out - gt).abs()
    return hole_w * (diff * mask).mean() + valid_w * (diff * (1 - mask)).mean()


def local_spectrum_loss(out: Tensor, gt: Tensor, mask: Tensor, window: int = 16,
                        stride: int = 8, scales: Sequence[int] = (1, 2),
                        floor: float = 0.02) -> Tensor:
    """Phase-free texture loss: L1 between the log amplitude spectra of ``out``'s and ``gt``'s
    local windows, over the windows that overlap the hole.

    Each ``window`` x ``window`` window (every ``stride`` pixels, per channel, at each of
    ``scales``: the images area-averaged that many times first) loses its mean, is tapered by a
    2-D Hann window and Fourier transformed; the loss compares ``log(|F| + floor)`` of the two
    images frequency by frequency, weighting each window by its share of hole pixels. A blurred
    fill has too little amplitude at high frequencies and a periodic lattice too much at a few
    (the spectral loss of Durall et al., "Watch your up-convolution", CVPR 2020, is the global,
    azimuthally averaged cousin); neither is the L1's business, which cannot see detail whose
    phase it cannot predict. ``floor`` (in the images' [-1, 1] units times the window's energy)
    ignores amplitudes at the level of JPEG noise.

    out, gt: ``(B, C, H, W)``, H and W at least ``window`` at the largest scale; mask:
    ``(B, 1, H, W)``, 1 = hole. Computed in fp32 (torch's FFT takes no bf16).
    Returns 0 when no window overlaps a hole.
    """
    taper = torch.hann_window(window, periodic=False, dtype=torch.float32, device=out.device)
    taper = taper[:, None] * taper[None, :]
    total = out.new_zeros((), dtype=torch.float32)
    full = tuple(t.float() for t in (out, gt, mask))
    for scale in scales:
        x, y, m = full if scale == 1 else (F.avg_pool2d(t, scale) for t in full)
        b, c = x.shape[:2]
        weights = F.unfold(m, window, stride=stride).mean(1)  # (B, L): hole share per window

        def log_amplitude(image: Tensor) -> Tensor:
            windows = F.unfold(image, window, stride=stride)  # (B, C*w*w, L)
            windows = windows.view(b, c, window, window, -1).permute(0, 4, 1, 2, 3)
            windows = windows - windows.mean(dim=(-2, -1), keepdim=True)
            return torch.log(torch.fft.rfft2(windows * taper).abs() + floor)  # (B, L, C, w, w/2+1)

        diff = (log_amplitude(x) - log_amplitude(y)).abs().mean(dim=(2, 3, 4))
        total = total + (diff * weights).sum() / weights.sum().clamp_min(1e-6)
    return total / len(scales)


def spatial_discount(mask: Tensor, gamma: float = 0.99) -> Tensor:
    """Per-pixel weights ``gamma ** l`` (DeepFill v1, spatially discounted reconstruction loss).

    ``l`` is the Euclidean distance from a pixel to the nearest known pixel of the same
    sample, so hole pixels next to the boundary weigh ``gamma`` and those deep inside the hole
    weigh less (their ground truth is the least certain); known pixels have ``l = 0`` and
    weigh 1. A sample that is entirely hole has no known pixel: there the distance to the
    nearest pixel outside the image is used (as the reference, which discounts by the
    distance to the box border). Computed per sample on the CPU (no gradient flows through a
    mask). mask: ``(B, 1, H, W)`` 1 = hole -> weights ``(B, 1, H, W)`` in ``(0, 1]``, same
    dtype and device as ``mask``.
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, H, W), got {tuple(mask.shape)}")
    holes = (mask.detach() > 0.5).to("cpu").numpy()
    distances = np.empty(holes.shape, np.float32)
    for i, hole in enumerate(holes[:, 0]):
        if hole.all():
            # Distance to the outside of the image: pad with one ring of known pixels.
            padded = np.pad(hole, 1, constant_values=False).astype(np.uint8)
            distances[i, 0] = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[
                1:-1, 1:-1
            ]
        else:
            distances[i, 0] = cv2.distanceTransform(
                hole.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
            )
    weights = np.power(np.float32(gamma), distances)
    return torch.from_numpy(weights).to(device=mask.device, dtype=mask.dtype)


def discounted_l1(
    out: Tensor, gt: Tensor, mask: Tensor, gamma: float = 0.99, weights: Tensor | None = None
) -> Tensor:
    """Hole L1 weighted by :func:`spatial_discount` (DeepFill v1; paper ``gamma = 0.99``).

    ``sum(|out - gt| * mask * gamma ** l) / (C * sum(mask))``: the mean over the hole's
    elements (of the whole batch), so only hole pixels count and the term's weight does not
    shrink with the hole's size. This is the reference's normalisation: it averages over the
    local box, which is the hole for its box masks; the known-pixel term is likewise divided
    by the known share. A batch without hole pixels gives 0. Add a plain L1 on the known
    pixels separately, as the paper does. Pass precomputed ``weights = spatial_discount(mask,
    gamma)`` to reuse them for several stages.
    out, gt: ``(B, C, H, W)``; mask: ``(B, 1, H, W)``.
    """
    if weights is None:
        weights = spatial_discount(mask, gamma)
    hole_elements = (mask.sum() * out.shape[1]).clamp(min=1.0)
    return ((out - gt).abs() * (mask * weights)).sum() / hole_elements


# --- adversarial ---------------------------------------------------------------------------


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """SN-PatchGAN discriminator hinge loss (DeepFill v2, as in its reference code):
    ``0.5 * mean(relu(1 - D(real))) + 0.5 * mean(relu(1 + D(fake)))``."""
    return 0.5 * F.relu(1 - real_logits).mean() + 0.5 * F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """SN-PatchGAN generator loss (DeepFill v2): ``-mean(D(G(z)))``."""
    return -fake_logits.mean()


def wgan_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """WGAN critic loss: ``mean(D(fake)) - mean(D(real))`` (add the gradient penalty)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_g_loss(fake_scores: Tensor) -> Tensor:
    """WGAN generator loss: ``-mean(D(fake))``."""
    return -fake_scores.mean()


def wgan_gp_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP gradient penalty ``mean((||grad D(x_hat)|| - 1) ** 2)`` (Gulrajani et al.).

    ``x_hat = real + a * (fake - real)`` with ``a ~ U(0, 1)`` per sample; ``fake`` is
    detached (the penalty trains the critic only). ``mask`` (``(B, 1, H, W)``, 1 = hole)
    restricts the gradient norm to hole pixels, as DeepFill v1 does (its ``gradients_penalty``
    multiplies the squared gradients by the mask). ``critic`` maps ``(B, C, H, W)`` to scores
    of any shape; wrap the discriminator in a lambda to give it extra inputs. Multiply the
    result by the paper's lambda (10). Computed in float32 even under autocast.
    """
    real = real.detach().float()
    fake = fake.detach().float()
    alpha = torch.rand(
        (real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device
    )
    x_hat = (real + alpha * (fake - real)).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    squared = grad.pow(2)
    if mask is not None:
        squared = squared * mask.float()
    # A tiny epsilon keeps the sqrt differentiable where the masked gradient is exactly zero.
    norms = (squared.flatten(1).sum(dim=1) + 1e-12).sqrt()
    return (norms - 1).pow(2).mean()


def ralsgan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Relativistic average LSGAN, discriminator (Jolicoeur-Martineau 2019, as used by CSA):
    ``E_r[(C(r) - E_f C(f) - 1)^2] + E_f[(C(f) - E_r C(r) + 1)^2]``; expectations are means
    over every logit of the batch."""
    real_mean, fake_mean = real_logits.mean(), fake_logits.mean()
    return ((real_logits - fake_mean - 1) ** 2).mean() + ((fake_logits - real_mean + 1) ** 2).mean()


def ralsgan_g_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Relativistic average LSGAN, generator: the discriminator loss with the targets
    swapped, ``E_f[(C(f) - E_r C(r) - 1)^2] + E_r[(C(r) - E_f C(f) + 1)^2]``. Pass the real
    logits detached (the generator cannot change them)."""
    real_mean, fake_mean = real_logits.mean(), fake_logits.mean()
    return ((fake_logits - real_mean - 1) ** 2).mean() + ((real_logits - fake_mean + 1) ** 2).mean()


# --- VGG feature losses --------------------------------------------------------------------


def _paired(feats_out: Features, feats_gt: Features) -> list[tuple[Tensor, Tensor]]:
    """Pair the layers of two feature sets given as mappings (by name) or sequences."""
    if isinstance(feats_out, Mapping):
        if not isinstance(feats_gt, Mapping) or set(feats_out) != set(feats_gt):
            raise ValueError("feature sets must hold the same named layers")
        pairs = [(feats_out[k], feats_gt[k]) for k in feats_out]
    else:
        if isinstance(feats_gt, Mapping) or len(feats_out) != len(feats_gt):
            raise ValueError("feature sets must hold the same number of layers")
        pairs = list(zip(feats_out, feats_gt))
    if not pairs:
        raise ValueError("feature sets are empty")
    for a, b in pairs:
        if a.shape != b.shape:
            raise ValueError(f"feature shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return pairs


def perceptual_loss(vgg_feats_out: Features, vgg_feats_gt: Features) -> Tensor:
    """``sum_p || psi_p(out) - psi_p(gt) ||_1 / N_p`` (PConv eq. 3; N_p = elements of layer p).

    Features: a mapping name -> ``(B, C_p, H_p, W_p)`` (as ``VGG16Features`` returns) or a
    sequence of such tensors, one per layer, in the same order for both arguments. For the
    PConv total loss call it for the raw output and for the composite and add the two.
    """
    return sum(l1(a, b) for a, b in _paired(vgg_feats_out, vgg_feats_gt))


def gram_matrix(features: Tensor) -> Tensor:
    """``psi^T psi / (C * H * W)`` per sample: ``(B, C, H, W)`` -> ``(B, C, C)`` in float32
    (a Gram matrix in bf16 loses the small differences the style loss measures)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    with torch.autocast(device_type=features.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def style_loss(vgg_feats_out: Features, vgg_feats_gt: Features) -> Tensor:
    """``sum_p mean(| G_p(out) - G_p(gt) |)`` with ``G_p`` the Gram matrix normalised by
    ``C_p * H_p * W_p`` (PConv eq. 4; the mean over the ``C_p x C_p`` entries is the paper's
    ``1 / C_p^2`` factor). Features as in :func:`perceptual_loss`."""
    return sum(
        l1(gram_matrix(a), gram_matrix(b)) for a, b in _paired(vgg_feats_out, vgg_feats_gt)
    )


def tv_loss(out: Tensor, mask: Tensor) -> Tensor:
    """Total variation on the hole dilated by one pixel (PConv eq. 6).

    ``sum over horizontal and vertical neighbour pairs that both lie in P of |x_a - x_b|``,
    divided by the number of elements of ``out``; ``P`` is the hole dilated by one pixel
    (3x3). Pass the composite (known pixels from the ground truth), as the paper does.
    out: ``(B, C, H, W)``; mask: ``(B, 1, H, W)`` 1 = hole.
    """
    region = F.max_pool2d((mask > 0.5).to(out.dtype), kernel_size=3, stride=1, padding=1)
    both_h = region[..., :, 1:] * region[..., :, :-1]
    both_v = region[..., 1:, :] * region[..., :-1, :]
    tv_h = ((out[..., :, 1:] - out[..., :, :-1]).abs() * both_h).sum()
    tv_v = ((out[..., 1:, :] - out[..., :-1, :]).abs() * both_v).sum()
    return (tv_h + tv_v) / out.numel()


def consistency_loss(
    csa_feat: Tensor, decoder_feat: Tensor, gt_vgg_relu4_3: Tensor, mask: Tensor | None = None
) -> Tensor:
    """CSA consistency loss: squared L2 from the CSA layer's output and from the matching
    decoder layer to VGG-16 relu4_3 of the ground truth (Liu et al. 2019, eq. 9).

    All three are ``(B, C, h, w)`` of equal shape (512 x 32 x 32 for a 256 input). The target
    is detached; gradients flow to both network features. ``mask`` (``(B, 1, H, W)``, 1 = hole)
    limits the loss to hole positions, as in the paper, after resizing it to ``(h, w)`` (a
    feature position counts as hole if any pixel under it is). Without it every position
    counts. Returns the mean over the counted elements of both terms, summed.
    """
    target = gt_vgg_relu4_3.detach()
    for name, feat in (("csa_feat", csa_feat), ("decoder_feat", decoder_feat)):
        if feat.shape != target.shape:
            raise ValueError(
                f"{name} shape {tuple(feat.shape)} differs from the VGG relu4_3 target "
                f"{tuple(target.shape)}"
            )
    if mask is None:
        return F.mse_loss(csa_feat, target) + F.mse_loss(decoder_feat, target)
    weight = F.adaptive_max_pool2d((mask > 0.5).to(target.dtype), target.shape[-2:])
    count = (weight.sum() * target.shape[1]).clamp_min(1)
    return (
        ((csa_feat - target) ** 2 * weight).sum() + ((decoder_feat - target) ** 2 * weight).sum()
    ) / count
