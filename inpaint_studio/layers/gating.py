"""The gating of a gated convolution, ``act(a) * sigmoid(b)``, fused when it can be.

``y`` is one convolution's output ``(B, 2C, H, W)`` (any memory format, any float dtype);
``a, b = y.split(C, dim=1)``; the result is ``(B, C, H, W)`` in ``y``'s dtype.

In eager PyTorch that is four passes over memory (activation, sigmoid, product, and their
saved copies for backward), and on a CPU with bf16 convolutions those elementwise passes
take most of a DeepFill v2 step. ``torch.compile`` turns the forward and the backward into
one loop each. Measured on a 2-core AMX Xeon, a DeepFill v2 G+D training step (bf16,
channels_last, cnum 48): 128 px batch 16, 9.1 -> 12.9 images/s; 256 px batch 8,
1.76 -> 2.56 images/s.

The fused kernels are compiled on first use (about 15 s on 2 cores, then cached on disk by
Inductor) and need a C++ compiler; :func:`set_fused` turns them on, and without a compiler,
or when compiling fails, the eager code runs (same values up to float rounding). One graph
with dynamic shapes serves every layer, so no recompilation per resolution.
"""

from __future__ import annotations

import os
import shutil
import warnings

import torch
import torch.nn.functional as F

_state = {"fused": False, "failed": False}


def activate(name: str | None, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """The feature activation of a gated conv by name: ``"elu"``, ``"relu"`` or None."""
    if name == "elu":
        return F.elu(x, inplace=inplace)
    if name == "relu":
        return F.relu(x, inplace=inplace)
    return x


def _eager(y: torch.Tensor, channels: int, activation: str | None) -> torch.Tensor:
    features, gates = y.split(channels, dim=1)
    return activate(activation, features) * torch.sigmoid(gates)


_compiled = None


def _compiled_gate():
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(_eager, dynamic=True)
    return _compiled


def compiler_available() -> bool:
    """True when Inductor can build CPU kernels here (it needs a C++ compiler)."""
    return any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


def set_fused(enabled: bool) -> bool:
    """Use the compiled gating from now on (when a compiler exists and the environment does
    not set ``INPAINT_STUDIO_NO_COMPILE=1``, which the test suite sets to spare a compile per
    process). Returns whether it is on."""
    allowed = compiler_available() and not os.environ.get("INPAINT_STUDIO_NO_COMPILE")
    _state["fused"] = bool(enabled) and allowed and not _state["failed"]
    return _state["fused"]


def fused_enabled() -> bool:
    return _state["fused"]


def gate(y: torch.Tensor, channels: int, activation: str | None) -> torch.Tensor:
    """``act(y[:, :C]) * sigmoid(y[:, C:])`` with ``C = channels``; see the module docstring.

    activation: ``"elu"``, ``"relu"`` or None (identity).
    """
    if _state["fused"]:
        try:
            return _compiled_gate()(y, channels, activation)
        except Exception as exc:  # a broken toolchain must not stop training or a fill
            _state["fused"], _state["failed"] = False, True
            warnings.warn(f"fused gating unavailable ({type(exc).__name__}: {exc}); "
                          "using the eager gating", RuntimeWarning, stacklevel=2)
    return _eager(y, channels, activation)
