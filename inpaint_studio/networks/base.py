"""The interface every inpainting generator implements, so that the engine, the trainer and
the benchmarks treat DeepFill v1/v2, CSA and PConv alike.

Tensor conventions inside networks:

* ``image``: float ``(B, 3, H, W)`` in ``[-1, 1]``. Values under the hole are arbitrary: the
  generator zeroes them itself, so a caller can pass the ground truth during training.
* ``mask``: float ``(B, 1, H, W)``, 1 = hole, 0 = known.
* ``sketch``: float ``(B, 1, H, W)`` in ``{0, 1}`` (1 = line) or None (no guidance, treated as
  all zeros). Generators with ``uses_sketch = False`` ignore it.
* H and W are multiples of ``multiple``.
* Outputs are raw (not composited) images in ``[-1, 1]``, ``(B, 3, H, W)``, one per stage.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn


class InpaintGenerator(nn.Module):
    """Base class of generators.

    stage_names: names of the stages ``forward`` returns, in order (e.g. coarse, refined).
    multiple: input H and W must be multiples of this.
    uses_sketch: whether the sketch input steers the output.
    arch: registry name, set by :func:`inpaint_studio.networks.build`.
    arch_args: the keyword arguments it was built with (stored in weight files).
    """

    stage_names: tuple[str, ...] = ("final",)
    multiple: int = 8
    uses_sketch: bool = False
    arch: str = ""
    arch_args: dict[str, Any]

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Return one raw output per stage in ``stage_names`` order."""
        raise NotImplementedError  # abstract: every registered generator overrides it

    def stages(
        self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(stage_name, output)`` as each stage is computed.

        The default runs ``forward`` and yields its outputs; two-stage generators override it
        so that the coarse output is yielded before the refinement runs (the app shows it as a
        preview while the refinement computes).
        """
        yield from zip(self.stage_names, self.forward(image, mask, sketch))

    def attention_source(self) -> Any | None:
        """After a forward pass with attention capture on, the attention of the last call
        (see ``layers.contextual``), else None. Generators without attention return None."""
        return None
