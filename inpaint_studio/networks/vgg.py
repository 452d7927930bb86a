"""VGG-16 feature extractor for the perceptual, style and consistency losses.

Our own definition of the convolutional part of VGG-16 (Simonyan & Zisserman 2015) up to
relu4_3, with parameters named like torchvision's ``vgg16().features`` (``features.N.weight``
/ ``features.N.bias``), so an ImageNet state dict saved from torchvision loads as is. The
weights are never downloaded: the user supplies the file (``--vgg-weights PATH``).

Not an inpainting generator, so it is not registered (``build`` never lists it).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

# torchvision's vgg16 "D" configuration up to conv4_3: (index in ``features``, in, out).
_CONVS = (
    (0, 3, 64), (2, 64, 64),
    (5, 64, 128), (7, 128, 128),
    (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (17, 256, 512), (19, 512, 512), (21, 512, 512),
)  # fmt: skip
_POOLS = (4, 9, 16)
# Index of the ReLU whose output each returned layer is.
LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CONVERT_HINT = (
    "Supply torchvision's ImageNet VGG-16 state dict with --vgg-weights PATH: either the file "
    "torchvision itself downloads (vgg16-397923af.pth, a plain state dict; .pth files are read "
    "with weights_only=True), or a .safetensors conversion made once on a machine with "
    "torchvision: python -c \"import torchvision; from safetensors.torch import save_file; "
    "save_file(torchvision.models.vgg16(weights='IMAGENET1K_V1').state_dict(), "
    "'vgg16.safetensors')\". Only the keys features.0 to features.21 are used."
)


class VGGWeightsMissing(FileNotFoundError):
    """No VGG-16 weights file was given, or the path does not exist."""


def load_vgg16_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a torchvision-style VGG-16 state dict from ``.safetensors`` or ``.pth``/``.pt``
    (the latter with ``weights_only=True``: no pickled code runs). Raises
    :class:`VGGWeightsMissing` if the file does not exist."""
    path = Path(path)
    if not path.is_file():
        raise VGGWeightsMissing(f"VGG-16 weights file {path} does not exist. {CONVERT_HINT}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} does not hold a state dict (got {type(state).__name__}). {CONVERT_HINT}"
        )
    return state


class VGG16Features(nn.Module):
    """Frozen VGG-16 returning ``relu1_2``, ``relu2_2``, ``relu3_3`` and ``relu4_3``.

    Input: float ``(B, 3, H, W)`` in ``[-1, 1]`` (the network convention); it is mapped to
    ``[0, 1]`` and normalised with the ImageNet mean and std inside. Output: a dict, in that
    order, of ``(B, 64, H, W)``, ``(B, 128, H/2, W/2)``, ``(B, 256, H/4, W/4)`` and
    ``(B, 512, H/8, W/8)`` post-ReLU activations. Parameters never require gradients and the
    module stays in eval mode, but gradients flow to the input (the losses train the
    generator through it).

    weights_path: torchvision ``vgg16`` ImageNet state dict (``.safetensors`` or ``.pth``);
    None or a missing file raises :class:`VGGWeightsMissing` with instructions. Keys must
    include ``features.{0,2,5,7,10,12,14,17,19,21}.{weight,bias}`` with VGG-16 shapes;
    others (later layers, classifier) are ignored.
    """

    def __init__(self, weights_path: str | os.PathLike | None) -> None:
        super().__init__()
        if weights_path is None:
            raise VGGWeightsMissing(f"this training recipe needs VGG-16 weights. {CONVERT_HINT}")
        layers: list[nn.Module] = []
        convs = {index: (cin, cout) for index, cin, cout in _CONVS}
        for index in range(max(LAYERS.values()) + 1):
            if index in convs:
                # On the meta device: the file's weights replace them, so skip the random init.
                layers.append(nn.Conv2d(*convs[index], kernel_size=3, padding=1, device="meta"))
            elif index in _POOLS:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # Not in-place: the activations we return must not be overwritten.
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._load(load_vgg16_state_dict(weights_path), Path(weights_path))
        self.requires_grad_(False)
        self.eval()

    def _load(self, state: dict[str, Tensor], path: Path) -> None:
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(
                f"{path} is not a torchvision VGG-16 state dict: missing {', '.join(missing[:4])}"
                f"{' ...' if len(missing) > 4 else ''}. {CONVERT_HINT}"
            )
        wrong = [
            f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
            for k, v in own.items()
            if state[k].shape != v.shape
        ]
        if wrong:
            raise ValueError(f"{path} has VGG-16 keys of the wrong shape: {'; '.join(wrong)}")
        self.load_state_dict({k: state[k].float() for k in own}, assign=True)

    def train(self, mode: bool = True) -> VGG16Features:
        """Stay in eval mode whatever a parent module asks (the extractor is frozen)."""
        return super().train(False)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = ((image + 1) * 0.5 - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        wanted = {index: name for name, index in LAYERS.items()}
        out: dict[str, Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out
