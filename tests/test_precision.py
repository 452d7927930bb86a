"""The precision policy (inpaint_studio.precision), the fused gating, and the precision tests
run again with oneDNN held to AVX2, so that an AMX machine checks the fp32-only path too.

Precision of each test: stated in its docstring. Tests whose name contains ``precision`` are
the precision-sensitive subset that :func:`test_precision_subset_passes_with_onednn_held_to_avx2`
runs in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inpaint_studio import precision
from inpaint_studio.engine import request
from inpaint_studio.layers import gating

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_cpu_probe():
    precision.cpu_has_native_bf16.cache_clear()
    yield
    precision.cpu_has_native_bf16.cache_clear()


def _cpuinfo(tmp_path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: fpu\n")
    return path


def test_precision_cpu_flags_come_from_the_first_processor(tmp_path):
    """Precision: none (flag parsing)."""
    flags = precision.cpu_flags(_cpuinfo(tmp_path, "fpu avx2 avx512_bf16 amx_bf16"))
    assert {"avx2", "avx512_bf16", "amx_bf16"} <= flags and "fpu" in flags
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()


def test_precision_policy_resolves_each_preference(monkeypatch, fresh_cpu_probe):
    """Precision: none (which dtype is chosen)."""
    monkeypatch.setattr(precision, "cpu_flags", lambda *a: frozenset({"avx2", "amx_bf16"}))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert precision.cpu_has_native_bf16()
    assert precision.resolve("auto", "cpu") == torch.bfloat16
    assert precision.resolve("fp32", "cpu") == torch.float32
    assert precision.resolve("auto", "mps") == torch.float32  # MPS stays exact
    # oneDNN held to AVX2 computes bf16 by emulation: auto then keeps fp32, bf16 still forces it
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    precision.cpu_has_native_bf16.cache_clear()
    assert precision.resolve("auto", "cpu") == torch.float32
    assert precision.resolve("bf16", "cpu") == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_flags", lambda *a: frozenset({"avx2", "fma"}))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    precision.cpu_has_native_bf16.cache_clear()
    assert precision.resolve("auto", "cpu") == torch.float32
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'half'"):
        precision.resolve("half", "cpu")
    assert [precision.name(d) for d in (torch.float32, torch.bfloat16, torch.float16)] == \
        ["fp32", "bf16", "fp16"]


def test_precision_names_agree_between_the_policy_and_the_engine_boundary():
    """Precision: none. request.py repeats the names so that it needs no torch."""
    assert request.PRECISIONS == precision.PRECISIONS


def test_precision_autocast_context_is_off_for_fp32():
    """Precision: fp32 (no autocast) and bf16 (autocast on)."""
    x = torch.ones(2, 2)
    with precision.autocast("cpu", torch.float32):
        assert (x @ x).dtype == torch.float32
    with precision.autocast("cpu", torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16


@pytest.mark.slow
@pytest.mark.skipif(not gating.compiler_available(), reason="no C++ compiler: Inductor cannot "
                    "build CPU kernels, and the eager gating runs instead")
def test_gating_warm_up_turns_the_fused_kernel_on_for_bf16_fills_only(monkeypatch):
    """Precision: bf16 (the fused and the eager gating round to bf16 at different points: atol
    of 2 bf16 steps, 2 * 2**-8, on outputs within +-1; 2 * 2**-7 relative)."""
    from inpaint_studio.layers.gated import GatedConv2d

    monkeypatch.delenv("INPAINT_STUDIO_NO_COMPILE", raising=False)
    torch.manual_seed(0)
    layer = GatedConv2d(3, 8, 3).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 20, 24).contiguous(memory_format=torch.channels_last)
    import inpaint_studio.layers.gated as gated_module

    def both_paths() -> list[torch.Tensor]:  # one band, then bands of 2 rows (the large-photo path)
        outs = []
        for band in (gated_module.BAND_ELEMENTS, 2 * 16 * 24):
            monkeypatch.setattr(gated_module, "BAND_ELEMENTS", band)
            with torch.inference_mode(), precision.autocast("cpu", torch.bfloat16):
                outs.append(layer(x))
        return outs

    eager = both_paths()
    assert not gating.uses_fused_inference(torch.bfloat16)
    try:
        seconds = gating.warm_up(torch.bfloat16)
        assert seconds is not None and seconds > 0, "the fused gating could not be compiled"
        assert gating.uses_fused_inference(torch.bfloat16)
        assert not gating.uses_fused_inference(torch.float32)  # fp32 keeps the faster eager

        def no_eager(*args, **kwargs):
            raise AssertionError("the eager gating ran although the fused kernel is on")

        monkeypatch.setattr(gated_module, "activate", no_eager)
        fused = both_paths()
    finally:
        gating.set_fused(False)
    for f, e in zip(fused, eager):
        assert f.dtype == e.dtype == torch.bfloat16
        assert f.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(f.float(), e.float(), atol=2 * 2**-8, rtol=2 * 2**-7)


def test_gating_warm_up_is_refused_where_compiling_is_off(monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_NO_COMPILE", "1")
    assert gating.warm_up(torch.bfloat16) is None
    assert not gating.uses_fused_inference(torch.bfloat16)


@pytest.mark.slow
@pytest.mark.skipif(not gating.compiler_available(), reason="no C++ compiler: Inductor cannot "
                    "build CPU kernels, and the eager gating runs instead")
@pytest.mark.parametrize("activation", ["elu", "relu", None])
def test_fused_gating_matches_eager_forward_and_backward(activation, monkeypatch):
    """Precision: fp32. The fused kernel evaluates the same formula in one loop; float32
    rounding differs only in the order of a few operations (atol 1e-6 on values ~1)."""
    monkeypatch.delenv("INPAINT_STUDIO_NO_COMPILE", raising=False)
    torch.manual_seed(0)
    y = torch.randn(2, 12, 9, 11).contiguous(memory_format=torch.channels_last)
    try:
        assert gating.set_fused(True)
        y_fused = y.clone().requires_grad_(True)
        out = gating.gate(y_fused, 6, activation)
        assert gating.fused_enabled(), "the compiled gating failed and fell back to eager"
        out.backward(torch.cos(out.detach()))
    finally:
        gating.set_fused(False)
    y_eager = y.clone().requires_grad_(True)
    expected = gating._eager(y_eager, 6, activation)
    expected.backward(torch.cos(expected.detach()))
    assert out.shape == (2, 6, 9, 11)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y_fused.grad, y_eager.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2",
                    reason="already the AVX2 run")
def test_precision_subset_passes_with_onednn_held_to_avx2():
    """Precision: whatever each test of the subset states. ``ONEDNN_MAX_CPU_ISA=AVX2`` makes
    oneDNN use the kernels of a CPU without bf16 (and makes ``auto`` pick fp32), so on an AMX
    machine this checks the AVX2-only path, and on an AVX2 machine it repeats the run."""
    files = ["tests/test_precision.py", "tests/test_contextual.py", "tests/test_deepfill_v2.py",
             "tests/test_deep_engine.py"]
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files,
         "-k", "precision and not subset"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )
    tail = (run.stdout + run.stderr)[-3000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " failed" not in run.stdout, tail
