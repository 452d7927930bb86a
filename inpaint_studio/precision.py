"""The one precision policy: which float type a device computes in.

Every part that runs a network (the deep engine, the trainer, the benchmarks) asks
:func:`resolve`; nothing else reads CPU flags or CUDA capabilities for this.

Preferences (``PRECISIONS``):

* ``"auto"``: bf16 autocast where the hardware computes bf16 natively, full fp32 elsewhere.
  Native means a CUDA device that supports bf16, or a CPU with AMX-BF16 or AVX512-BF16
  (Sapphire/Emerald Rapids and later Xeons, AMD Zen 4/5). Those CPUs run bf16 convolutions
  several times faster than fp32 (a 3x3 96->192 conv: 651 vs 96 GFLOP/s measured on a
  2-core AMX Xeon); on an AVX2-only CPU bf16 is emulated and slower than fp32, so ``auto``
  keeps fp32 there. The CPU is asked directly (``/proc/cpuinfo`` flags), not the torch build:
  a wheel may be built with bf16 kernels that the running CPU lacks.
  CUDA devices without bf16 (pre-Ampere) get fp16, which training pairs with a gradient
  scaler.
* ``"fp32"``: always full precision.
* ``"bf16"``: always bf16 autocast (emulated, hence slow, on CPUs without native support).

``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's own switch, which tests use to imitate an older CPU)
counts as "no native bf16" too, so ``auto`` then picks fp32 as it would on such a CPU.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
#: CPU flags (as /proc/cpuinfo spells them) that mean bf16 arithmetic in hardware.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: oneDNN ISA caps below which its bf16 kernels are emulated (see the module docstring).
_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor listed in ``cpuinfo`` (empty when the
    file is missing, as on macOS and Windows)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware and oneDNN is allowed to use it."""
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa_cap in _ISA_WITHOUT_BF16:
        return False
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def resolve(preference: str, device: torch.device | str) -> torch.dtype:
    """The compute dtype for ``preference`` (one of :data:`PRECISIONS`) on ``device``:
    ``torch.float32`` (no autocast), ``torch.bfloat16`` or, on CUDA without bf16,
    ``torch.float16``. Raises ``ValueError`` for an unknown preference."""
    if preference not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {preference!r}")
    device = torch.device(device)
    if preference == "fp32" or device.type not in ("cpu", "cuda"):
        # MPS and others: autocast coverage differs between torch releases; stay exact.
        return torch.float32
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if preference == "bf16" or cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def name(dtype: torch.dtype) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: how messages and logs name a compute dtype."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device | str, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing for fp32."""
    device = torch.device(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
