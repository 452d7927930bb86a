"""Stand-in for trained weights in tests whose outputs must depend on their inputs.

A freshly initialised deep generator (Glorot or Kaiming init, like the references) damps its
signal through its many gated layers: DeepFill v2's refined output has a std of about 2e-7
whatever the photo, so a test comparing two runs of it passes whatever the code does.
:func:`lively` re-draws every convolution so that activations stay around 0.1 without
saturating ``tanh``; outputs then change visibly with the input. (Generators without gates,
DeepFill v1, CSA and PConv, are lively as initialised; this gain would saturate them.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Weight std = GAIN / sqrt(fan_in): above 1 to make up for the gates' sigmoid (about 0.5).
GAIN = 2.2


def lively(model: nn.Module, seed: int = 0, gain: float = GAIN) -> nn.Module:
    """Re-draw the weights (std ``gain / sqrt(fan_in)``) and biases (std 0.1) of every
    ``Conv2d`` / ``ConvTranspose2d`` in ``model``, in place and seeded; returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.modules():
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g)
                                  * (gain / math.sqrt(fan_in)))
                if conv.bias is not None:
                    conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
    return model
