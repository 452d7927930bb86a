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
import threading
import time
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
    _state["fused"] = bool(enabled) and _can_fuse()
    return _state["fused"]


def _can_fuse() -> bool:
    allowed = compiler_available() and not os.environ.get("INPAINT_STUDIO_NO_COMPILE")
    return allowed and not _state["failed"]


def fused_enabled() -> bool:
    return _state["fused"]


def uses_fused_inference(dtype: torch.dtype) -> bool:
    """Whether a no-grad gating in ``dtype`` takes the fused kernel. Only in bf16/fp16: in
    fp32 the eager in-place gating was faster (DeepFill v2 cnum 32, 512 px fill on a 2-core
    AMX Xeon, process CPU seconds: bf16 eager 1.45, fused 0.99; fp32 eager 2.24, fused 2.54)."""
    return _state["fused"] and dtype in (torch.bfloat16, torch.float16)


_warm_lock = threading.Lock()


def warm_up(dtype: torch.dtype = torch.bfloat16) -> float | None:
    """Compile the fused no-grad gating for ``dtype`` now, on small channels_last tensors (every
    activation), then turn it on (:func:`set_fused`); returns the seconds it took, or None when
    it cannot be used here (no compiler, ``INPAINT_STUDIO_NO_COMPILE``, or compiling failed:
    the eager gating stays). Safe to call from a background thread while fills run eagerly:
    they switch to the compiled kernel between two layers once it is ready. Compiling takes
    ~8 s of CPU the first time on a machine, a few seconds once Inductor's disk cache holds it,
    so a long-lived process (the app, a batch) gains and a single fill does not."""
    with _warm_lock:
        start = time.perf_counter()
        if not _can_fuse():
            return None
        try:  # fills keep the eager gating until every variant is built
            with torch.inference_mode():
                for channels, size in ((4, 6), (8, 5)):  # two shapes: the dynamic graph
                    y = torch.randn(1, 2 * channels, size, size + 1).to(dtype)
                    y = y.contiguous(memory_format=torch.channels_last)
                    for activation in ("elu", "relu", None):
                        _compiled_gate()(y, channels, activation)
        except Exception as exc:  # a broken toolchain must not stop the app
            _fall_back(exc)
            return None
        _state["fused"] = True
        return time.perf_counter() - start


def gate(y: torch.Tensor, channels: int, activation: str | None) -> torch.Tensor:
    """``act(y[:, :C]) * sigmoid(y[:, C:])`` with ``C = channels``; see the module docstring.

    activation: ``"elu"``, ``"relu"`` or None (identity).
    """
    if _state["fused"]:
        try:
            return _compiled_gate()(y, channels, activation)
        except Exception as exc:  # a broken toolchain must not stop training or a fill
            _fall_back(exc)
    return _eager(y, channels, activation)


def _fall_back(exc: Exception) -> None:
    """Use the eager gating for the rest of the process, and say why once."""
    _state["fused"], _state["failed"] = False, True
    warnings.warn(f"fused gating unavailable ({type(exc).__name__}: {exc}); "
                  "using the eager gating", RuntimeWarning, stacklevel=3)
