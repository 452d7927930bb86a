"""DeepFill v2 generator (Yu et al., "Free-Form Image Inpainting with Gated Convolution", 2019).

Two stages, both fully gated-convolutional:

* coarse net: encoder to 1/4 resolution, four dilated convs (rates 2, 4, 8, 16), decoder;
  input = masked RGB, ones, mask and (with ``use_sketch``) sketch * mask: ``(B, 5|6, H, W)``.
* refine net: input = the coarse output composited into the known pixels ``(B, 3, H, W)``;
  a dilated-conv branch ("hallucination") and a contextual-attention branch, each at 1/4
  resolution with 4 * cnum / 2 channels, concatenated and decoded.

Widths follow the reference, whose ``cnum`` counts conv outputs before gating: features are
``cnum/2``, ``cnum`` and ``2*cnum`` channels (24/48/96 at the default 48), ~4.1 M parameters.
Padding is zero "same" padding; the reference's TF "SAME" pads stride-2 convs on the bottom
and right only, so converted TF weights would be off by half a pixel (ours are trained here).
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention import build_attention
from ..layers.contextual import AttentionCapture, ContextualAttention
from ..layers.gated import GatedConv2d, GatedUpConv2d
from .base import InpaintGenerator
from .registry import register_generator

#: Resolution of the contextual-attention features relative to the image.
ATTENTION_STRIDE = 4
#: Extra feature rows/columns kept by the ``"hole"`` scope so that pixels just outside the hole
#: are exact too: the HD layer blends the output into a band of up to 4 px around the hole
#: (``engine.hd.SEAM_PX``), and one feature cell at 1/4 covers 4 px.
SEAM_CELLS = 1
#: Feature cells (at 1/4) of a decoder's input that one output pixel depends on, either way, per
#: up-sampling mode (``layers.gated.UPSAMPLE_MODES``): two 3x3 convs at 1/4, two at 1/2 and three
#: at full resolution, with x2 up-sampling between. Nearest: pixel ``4c + j`` reads cells
#: ``c - 4 .. c + 4`` for every ``j`` in 0..3; bilinear reads one more input row or column each
#: side per up-sampling, ``c - 5 .. c + 5``.
DECODER_REACHES = {"nearest": 4, "bilinear": 5}
DECODER_REACH = DECODER_REACHES["nearest"]
#: Feature rows or columns (at 1/4) beyond which the attention output cannot reach a hole pixel:
#: the attention decoder's two 3x3 convs, then the decoder's reach, and one cell to spare.
ATTENTION_DECODER_REACH = 3
SCOPES = ("all", "hole")


Spans = tuple[tuple[int, int], tuple[int, int]]


def hole_cell_spans(feature_mask: torch.Tensor) -> Spans | None:
    """Feature rows ``[lo, hi)`` and columns ``[lo, hi)`` holding the batch's hole cells
    (``feature_mask`` ``(B, 1, h, w)`` at 1/4), or None when it has no hole."""
    spans = []
    for dims in ((0, 1, 3), (0, 1, 2)):
        lines = torch.nonzero(feature_mask.amax(dim=dims) > 0).flatten()
        if lines.numel() == 0:
            return None
        spans.append((int(lines[0]), int(lines[-1]) + 1))
    return spans[0], spans[1]


def _widened(spans: Spans, reach: int) -> Spans:
    """``spans`` grown by ``reach`` cells each way (not clipped)."""
    return tuple((lo - reach, hi + reach) for lo, hi in spans)  # type: ignore[return-value]


def decoder_window(feature_mask: torch.Tensor, spans: Spans | None = None,
                   reach: int = DECODER_REACH) -> tuple[int, int, int, int] | None:
    """Feature rows ``[r0, r1)`` and columns ``[c0, c1)`` (at 1/4, clipped to the map) where a
    decoder must run so that every hole pixel and the HD layer's seam band around it come out
    as they would from the whole map: the batch's hole cells widened by ``reach`` (the
    decoder's :data:`DECODER_REACHES`) ``+ SEAM_CELLS``. None when ``feature_mask``
    ``(B, 1, h, w)`` has no hole. ``spans``: its :func:`hole_cell_spans`, when the caller has
    them already."""
    spans = hole_cell_spans(feature_mask) if spans is None else spans
    if spans is None:
        return None
    (r0, r1), (c0, c1) = _widened(spans, reach + SEAM_CELLS)
    h, w = feature_mask.shape[-2:]
    return max(0, r0), min(h, r1), max(0, c0), min(w, c1)


def _window_of(features: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
    """``features[:, :, rows, cols]`` as a dense tensor in the features' memory format (a
    strided view would make every conv of the decoder copy it)."""
    crop = features[:, :, rows[0]:rows[1], cols[0]:cols[1]]
    if features.is_contiguous(memory_format=torch.channels_last):
        return crop.contiguous(memory_format=torch.channels_last)
    return crop.contiguous()


def _decode_in_window(decoder: nn.Module, features: torch.Tensor,
                      window: tuple[int, int, int, int] | None) -> torch.Tensor:
    """``decoder(features)`` ``(B, C, h, w) -> (B, 3, 4h, 4w)``, run on the feature window only
    when one is given (:func:`decoder_window`); outside it the output is 0 (mid-grey)."""
    if window is None:
        return decoder(features)
    r0, r1, c0, c1 = window
    return _placed(decoder(_window_of(features, (r0, r1), (c0, c1))), window, features.shape)


def _placed(inner: torch.Tensor, window: tuple[int, int, int, int], feature_shape: torch.Size) -> torch.Tensor:
    """A decoder's output ``inner`` for the feature ``window``, placed in a zero image of the
    whole map's size (``feature_shape`` ``(B, C, h, w)`` at 1/4 -> ``(B, 3, 4h, 4w)``)."""
    r0, r1, c0, c1 = window
    b, _, h, w = feature_shape
    s = ATTENTION_STRIDE
    out = inner.new_zeros(b, inner.shape[1], h * s, w * s)
    out[:, :, r0 * s:r1 * s, c0 * s:c1 * s] = inner
    return out


def _dilated_stack(ch: int) -> list[nn.Module]:
    return [GatedConv2d(ch, ch, 3, dilation=rate) for rate in (2, 4, 8, 16)]


def _decoder(in_ch: int, cnum: int, upsample: str) -> nn.Sequential:
    """1/4 resolution ``(B, in_ch, H/4, W/4)`` -> image ``(B, 3, H, W)`` in [-1, 1];
    ``upsample``: the x2 up-samplings' mode (``layers.gated.UPSAMPLE_MODES``)."""
    c1, c2, c4 = cnum // 2, cnum, 2 * cnum
    return nn.Sequential(
        GatedConv2d(in_ch, c4, 3),
        GatedConv2d(c4, c4, 3),
        GatedUpConv2d(c4, c2, upsample=upsample),
        GatedConv2d(c2, c2, 3),
        GatedUpConv2d(c2, c1, upsample=upsample),
        GatedConv2d(c1, c1 // 2, 3),
        nn.Conv2d(c1 // 2, 3, 3, padding=1),  # plain output conv, as in the reference
        nn.Tanh(),
    )


class CoarseNet(nn.Module):
    """``(B, in_ch, H, W)`` network input -> coarse image ``(B, 3, H, W)`` in [-1, 1]."""

    def __init__(self, in_ch: int, cnum: int, upsample: str = "nearest") -> None:
        super().__init__()
        c1, c2, c4 = cnum // 2, cnum, 2 * cnum
        self.encoder = nn.Sequential(
            GatedConv2d(in_ch, c1, 5),
            GatedConv2d(c1, c2, 3, stride=2),
            GatedConv2d(c2, c2, 3),
            GatedConv2d(c2, c4, 3, stride=2),
            GatedConv2d(c4, c4, 3),
            GatedConv2d(c4, c4, 3),
            *_dilated_stack(c4),
        )
        self.decoder = _decoder(c4, cnum, upsample)
        self.decoder_reach = DECODER_REACHES[upsample]

    def forward(self, x: torch.Tensor, window: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """window: feature rows and columns to decode (:func:`decoder_window`), None for all."""
        return _decode_in_window(self.decoder, self.encoder(x), window)


class RefineNet(nn.Module):
    """Composited image ``(B, 3, H, W)`` and mask ``(B, 1, H, W)`` -> refined image in [-1, 1].

    attention: optional feature-attention block (``layers.attention``) on the concatenated
    branch features before decoding; None keeps the reference architecture.
    scope: ``"all"`` computes contextual attention for every position (training: the raw
        output is exact everywhere); ``"hole"`` only for the feature rows and columns within
        the decoder's reach ``+ ATTENTION_DECODER_REACH + SEAM_CELLS`` of the batch's hole
        rows and columns, which leaves every hole pixel, and every pixel within 4 px of the
        hole (the HD layer's feathered seam), of the output unchanged while the raw output
        farther away is not the model's (inference, where only those pixels are kept). The
        ``"hole"`` scope also runs the attention decoder and the decoder on the hole's window
        only (:func:`decoder_window`; the raw output is 0 outside it). Blocks with global
        pooling (``attention`` set) reach everywhere, so they always get ``"all"``.
    """

    scope: str = "all"

    def __init__(self, cnum: int, attention: str | None = None, upsample: str = "nearest") -> None:
        super().__init__()
        c1, c2, c4 = cnum // 2, cnum, 2 * cnum
        self.hallucination = nn.Sequential(
            GatedConv2d(3, c1, 5),
            GatedConv2d(c1, c1, 3, stride=2),
            GatedConv2d(c1, c2, 3),
            GatedConv2d(c2, c2, 3, stride=2),
            GatedConv2d(c2, c4, 3),
            GatedConv2d(c4, c4, 3),
            *_dilated_stack(c4),
        )
        self.attention_encoder = nn.Sequential(
            GatedConv2d(3, c1, 5),
            GatedConv2d(c1, c1, 3, stride=2),
            GatedConv2d(c1, c2, 3),
            GatedConv2d(c2, c4, 3, stride=2),
            GatedConv2d(c4, c4, 3),
            GatedConv2d(c4, c4, 3, activation="relu"),
        )
        self.contextual = ContextualAttention(ksize=3, stride=1, rate=2, fuse_k=3, softmax_scale=10.0)
        self.attention_decoder = nn.Sequential(GatedConv2d(c4, c4, 3), GatedConv2d(c4, c4, 3))
        self.merge_attention = build_attention(attention, 2 * c4)
        self.decoder = _decoder(2 * c4, cnum, upsample)
        self.decoder_reach = DECODER_REACHES[upsample]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hallucinated = self.hallucination(x)
        features = self.attention_encoder(x)
        # any hole pixel in a 4x4 block makes the feature pixel a hole (see ContextualAttention)
        feature_mask = F.max_pool2d(mask, ATTENTION_STRIDE)
        windowed = self._windowed()
        spans = hole_cell_spans(feature_mask) if windowed else None
        attended = self.contextual(features, features, feature_mask, *self._attention_window(windowed, spans))
        window = decoder_window(feature_mask, spans, self.decoder_reach) if spans is not None else None
        if window is None:
            borrowed = self.attention_decoder(attended)
            return self.decoder(self.merge_attention(torch.cat([hallucinated, borrowed], dim=1)))
        # The attention decoder's 3x3 convs need one more cell each around the decoder's
        # window; the attention output is exact there (ATTENTION_DECODER_REACH covers them).
        r0, r1, c0, c1 = window
        h, w = attended.shape[-2:]
        more = len(self.attention_decoder)
        a0, a1, b0, b1 = max(0, r0 - more), min(h, r1 + more), max(0, c0 - more), min(w, c1 + more)
        borrowed = self.attention_decoder(_window_of(attended, (a0, a1), (b0, b1)))
        borrowed = borrowed[:, :, r0 - a0:r1 - a0, c0 - b0:c1 - b0]
        merged = torch.cat([_window_of(hallucinated, (r0, r1), (c0, c1)), borrowed], dim=1)
        return _placed(self.decoder(merged), window, hallucinated.shape)

    def _windowed(self) -> bool:
        """Whether the ``"hole"`` scope's windows apply (not with a global-pooling block)."""
        return self.scope == "hole" and isinstance(self.merge_attention, nn.Identity)

    def _attention_window(
        self, windowed: bool, spans: Spans | None
    ) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """Feature rows ``[lo, hi)`` and columns ``[lo, hi)`` whose attention output can reach
        a hole pixel (``spans``: the hole cells' :func:`hole_cell_spans`), or ``(None, None)``
        for all when not ``windowed``."""
        if not windowed:
            return None, None
        if spans is None:
            return (0, 0), (0, 0)
        return _widened(spans, self.decoder_reach + ATTENTION_DECODER_REACH + SEAM_CELLS)


@register_generator(
    "deepfill_v2",
    "DeepFill v2 (Yu et al. 2019): gated convolutions, contextual attention, optional sketch "
    "guidance; coarse then refined",
)
class DeepFillV2Generator(InpaintGenerator):
    """DeepFill v2; see the module docstring. Tensor conventions: ``networks.base``.

    cnum: the reference's base width (conv outputs before gating); 48 gives ~4.1 M parameters.
    use_sketch: take a sketch channel (sketch * mask; zeros when no sketch is given).
    attention: optional feature-attention block name for the refine net (``se``, ``cbam``,
        ``danet``; see ``layers.attention``), None for the reference architecture.
    upsample: how both decoders double their resolution, ``"nearest"`` (the reference's) or
        ``"bilinear"`` (``layers.gated.UPSAMPLE_MODES``); the weights are the same shapes, so a
        model can be fine-tuned from one to the other.
    """

    stage_names = ("coarse", "refined")
    multiple = 8

    def __init__(self, cnum: int = 48, use_sketch: bool = True, attention: str | None = None,
                 upsample: str = "nearest") -> None:
        super().__init__()
        if cnum < 4 or cnum % 4:
            raise ValueError(f"cnum must be a positive multiple of 4, got {cnum}")
        self.uses_sketch = bool(use_sketch)
        self.coarse_net = CoarseNet(6 if use_sketch else 5, cnum, upsample)
        self.refine_net = RefineNet(cnum, attention, upsample)
        self._init_like_reference()

    def _init_like_reference(self) -> None:
        """Glorot-uniform conv kernels and zero biases (TensorFlow's defaults, which the
        reference trains from). PyTorch's default init has half the variance, and through
        17 gated layers a fresh generator's output then barely depends on its input."""
        for module in [self.coarse_net, self.refine_net.hallucination, self.refine_net.attention_encoder,
                       self.refine_net.attention_decoder, self.refine_net.decoder]:
            for conv in module.modules():
                if isinstance(conv, nn.Conv2d):
                    nn.init.xavier_uniform_(conv.weight)
                    nn.init.zeros_(conv.bias)

    @property
    def attention_scope(self) -> str:
        """Where contextual attention and the decoders are computed: ``"all"`` (default,
        training) or ``"hole"`` (inference: same hole pixels and seam band, less work; the raw
        output elsewhere is not the model's; see :class:`RefineNet`)."""
        return self.refine_net.scope

    @attention_scope.setter
    def attention_scope(self, scope: str) -> None:
        if scope not in SCOPES:
            raise ValueError(f"attention_scope must be one of {SCOPES}, got {scope!r}")
        self.refine_net.scope = scope

    # ------------------------------------------------------------------ attention capture

    def capture_attention(self, topk: int) -> None:
        """Keep, on every later forward, the ``topk`` heaviest background cells of each query
        (0 turns capture off). Read them with :meth:`attention_source`."""
        if topk < 0:
            raise ValueError(f"topk must be >= 0, got {topk}")
        self.refine_net.contextual.capture_topk = int(topk)

    def attention_source(self) -> AttentionCapture | None:
        """The captured attention of the last forward, in matching-grid coordinates: image
        pixel ``(Y, X)`` is grid cell ``(Y // 8, X // 8)`` (features at 1/4, rate 2)."""
        return self.refine_net.contextual.last_capture

    # ------------------------------------------------------------------ forward

    def _check(self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None) -> None:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        b, _, h, w = image.shape
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"image size {h}x{w} is not a multiple of {self.multiple}")
        if tuple(mask.shape) != (b, 1, h, w):
            raise ValueError(f"mask must be ({b}, 1, {h}, {w}), got {tuple(mask.shape)}")
        if sketch is not None and tuple(sketch.shape) != (b, 1, h, w):
            raise ValueError(f"sketch must be ({b}, 1, {h}, {w}) or None, got {tuple(sketch.shape)}")

    def coarse(self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None) -> torch.Tensor:
        """The coarse stage: raw ``(B, 3, H, W)`` in [-1, 1]."""
        self._check(image, mask, sketch)
        parts = [image * (1 - mask), torch.ones_like(mask), mask]
        if self.uses_sketch:
            parts.append(torch.zeros_like(mask) if sketch is None else sketch * mask)
        window = None
        if self.attention_scope == "hole":  # only the hole and its seam are kept: decode there
            window = decoder_window(F.max_pool2d(mask, ATTENTION_STRIDE),
                                    reach=self.coarse_net.decoder_reach)
        return self.coarse_net(torch.cat(parts, dim=1), window)

    def refine(self, image: torch.Tensor, mask: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """The refined stage from the coarse one: raw ``(B, 3, H, W)`` in [-1, 1]."""
        return self.refine_net(coarse * mask + image * (1 - mask), mask)

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        coarse = self.coarse(image, mask, sketch)
        return coarse, self.refine(image, mask, coarse)

    def stages(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield the coarse stage before the refine net runs, then the refined stage."""
        coarse = self.coarse(image, mask, sketch)
        yield "coarse", coarse
        yield "refined", self.refine(image, mask, coarse)
