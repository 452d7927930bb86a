"""Feature attention blocks selectable by name: ``build_attention(name, channels)``.

* ``se``: squeeze-and-excitation (Hu et al. 2018): channel gates from global average pooling.
* ``cbam``: CBAM (Woo et al. 2018): channel attention (avg- and max-pooled descriptors through a
  shared MLP) followed by spatial attention (7x7 conv over channel-wise mean and max).
* ``danet``: DANet (Fu et al. 2019): position attention module + channel attention module,
  each added to the input with a learned scale initialised at 0, so the block is the identity
  at initialisation and learns how much attention to mix in.
* ``None`` / ``"none"``: identity.

Every block maps ``(B, C, H, W) -> (B, C, H, W)``. DANet's position attention is O((HW)^2) in
memory, so generators put these blocks at their lowest-resolution features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_NAMES = ("none", "se", "cbam", "danet")


class SqueezeExcitation(nn.Module):
    """x * sigmoid(W2 relu(W1 avgpool(x))); hidden width C / reduction (at least 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(gate)


class CBAM(nn.Module):
    """Channel attention then spatial attention, each a sigmoid gate multiplied in."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_gate = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(channel_gate)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class PositionAttention(nn.Module):
    """DANet position attention: out_j = sum_i softmax_i(q_j . k_i) v_i over all positions.

    Returns only the attended term (B, C, H, W); the caller adds it to the input with its scale.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        k = self.key(x).flatten(2)  # (B, C', HW)
        v = self.value(x).flatten(2)  # (B, C, HW)
        attn = torch.softmax(torch.bmm(q, k).float(), dim=-1).to(v.dtype)  # (B, HW_j, HW_i)
        return torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)


class ChannelAttention(nn.Module):
    """DANet channel attention: out_c = sum_c' softmax_c'(x_c . x_c') x_c' (no parameters).

    Follows the paper's softmax of the channel Gram matrix (the reference code subtracts the
    energy from its row maximum before the softmax, which inverts the ranking; we do not).
    Returns only the attended term.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)  # (B, C, HW)
        energy = torch.bmm(flat, flat.transpose(1, 2)).float()  # (B, C, C)
        attn = torch.softmax(energy, dim=-1).to(x.dtype)
        return torch.bmm(attn, flat).view(b, c, h, w)


class DualAttention(nn.Module):
    """x + gamma_p * PositionAttention(x) + gamma_c * ChannelAttention(x); gammas start at 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.position = PositionAttention(channels)
        self.channel = ChannelAttention()
        self.gamma_position = nn.Parameter(torch.zeros(1))
        self.gamma_channel = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma_position * self.position(x) + self.gamma_channel * self.channel(x)


def build_attention(name: str | None, channels: int) -> nn.Module:
    """The attention block ``name`` (one of ``ATTENTION_NAMES`` or None) for ``channels``."""
    key = "none" if name is None else str(name).lower()
    if key == "none":
        return nn.Identity()
    if key == "se":
        return SqueezeExcitation(channels)
    if key == "cbam":
        return CBAM(channels)
    if key == "danet":
        return DualAttention(channels)
    raise ValueError(f"unknown attention block {name!r}; choose one of {', '.join(ATTENTION_NAMES)}")
