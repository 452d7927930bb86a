"""Model files: round trip, header-only metadata, and the exact error for every bad file."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from inpaint_studio import weights
from inpaint_studio.networks import InpaintGenerator, build, registry
from inpaint_studio.weights import WeightsError, load_legacy_pth, load_model, read_metadata, save_model

ARCH = "test_weights_tiny"


class TinyGenerator(InpaintGenerator):
    """Two stages, a conv, a batch-norm (so buffers travel too) and a width argument."""

    stage_names = ("coarse", "refined")

    def __init__(self, width: int = 4):
        super().__init__()
        self.encode = nn.Conv2d(5, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.decode = nn.Conv2d(width, 3, 1)

    def forward(self, image, mask, sketch=None):
        sketch = torch.zeros_like(mask) if sketch is None else sketch
        out = torch.tanh(self.decode(self.norm(self.encode(torch.cat([image, mask, sketch], 1)))))
        return out, out


@pytest.fixture
def tiny_arch(monkeypatch):
    """Register the tiny architecture for one test only (other tests' engine lists stay clean)."""
    monkeypatch.setitem(registry._GENERATORS, ARCH, registry.ArchInfo(ARCH, TinyGenerator, "tiny"))
    return ARCH


@pytest.fixture
def model(tiny_arch):
    torch.manual_seed(0)
    m = build(tiny_arch, width=4)
    m.norm.running_mean.uniform_(-1, 1)  # non-default buffer values must survive the trip
    return m


META = {
    "title": "Tiny test model",
    "description": "for tests",
    "provenance": {"data": "none", "steps": 12, "images_seen": 96, "hardware": "cpu", "time_s": 1.5},
    "metrics": {"l1": 0.1},
    "working_size": 256,
}


def test_round_trip_restores_every_value(model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, metadata=META)
    loaded, card = load_model(path)
    assert type(loaded) is TinyGenerator and loaded.arch == ARCH and loaded.arch_args == {"width": 4}
    assert not loaded.training
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert card.title == "Tiny test model" and card.provenance["images_seen"] == 96
    assert card.extra == {"working_size": 256}


def test_fp16_file_is_half_size_and_loads_as_float32_within_tolerance(model, tmp_path):
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_model(full, model, metadata=META)
    card = save_model(half, model, metadata=META, fp16=True)
    assert card.dtype == "float16"
    assert all(t.dtype == "F16" for n, t in card.tensors.items() if "num_batches" not in n)
    assert _data_bytes(half) * 2 - _data_bytes(full) == 8  # all but the int64 counter halve
    loaded, _ = load_model(half)
    for name, value in model.state_dict().items():
        got = loaded.state_dict()[name]
        assert got.dtype == value.dtype, name
        # float16 keeps 11 significant bits: relative error <= 2**-11.
        assert torch.allclose(got.float(), value.float(), rtol=2**-10, atol=1e-6), name


def _data_bytes(path) -> int:
    """Bytes of tensor data in a safetensors file (after the 8-byte length and the header)."""
    raw = path.read_bytes()
    return len(raw) - 8 - int.from_bytes(raw[:8], "little")


def test_metadata_is_read_without_touching_tensor_data(model, tmp_path, monkeypatch):
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, metadata=META)

    def refuse(*a, **k):
        raise AssertionError("read_metadata must not load tensors")

    monkeypatch.setattr(weights, "load_file", refuse)
    card = read_metadata(path)
    assert card.arch == ARCH and card.format_version == weights.FORMAT_VERSION
    assert card.tensors["encode.weight"].shape == (4, 5, 3, 3)
    assert card.parameter_count == sum(t.numel() for t in model.state_dict().values())


def test_model_card_json_is_written_beside_the_weights(model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, metadata=META)
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["title"] == "Tiny test model" and card["arch"] == ARCH
    assert card["provenance"]["steps"] == 12 and card["working_size"] == 256
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left"


def test_saving_over_a_file_replaces_it_whole(model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, metadata={**META, "title": "first"})
    save_model(path, model, metadata={**META, "title": "second"})
    assert read_metadata(path).title == "second"


def test_save_refuses_unbuilt_model_and_conflicting_arch(model, tmp_path):
    with pytest.raises(ValueError, match="no architecture name"):
        save_model(tmp_path / "x.safetensors", TinyGenerator(), metadata={})
    with pytest.raises(ValueError, match="disagrees"):
        save_model(tmp_path / "x.safetensors", model, metadata={"arch": "deepfill_v1"})
    with pytest.raises(ValueError, match="end in .safetensors"):
        save_model(tmp_path / "x.pt", model, metadata={})


def _saved_with_width(tmp_path, tiny_arch, width):
    path = tmp_path / f"w{width}.safetensors"
    save_model(path, build(tiny_arch, width=width), metadata={})
    return path


def _rewrite(path, tensors, arch_args):
    """Write ``tensors`` under the header of ``path`` but claiming ``arch_args``."""
    from safetensors.torch import save_file

    meta = {**dict(_raw_metadata(path)), "arch_args": json.dumps(arch_args)}
    save_file(tensors, str(path), metadata=meta)


def _raw_metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


def test_missing_keys_are_named_with_counts(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, model, metadata={})
    tensors = {k: v for k, v in model.state_dict().items() if not k.startswith("norm.")}
    _rewrite(path, tensors, {"width": 4})
    with pytest.raises(WeightsError) as err:
        load_model(path)
    msg = str(err.value)
    assert "m.safetensors does not fit TinyGenerator" in msg
    assert "5 missing: norm.bias, norm.num_batches_tracked, norm.running_mean" in msg
    assert "unexpected" not in msg


def test_unexpected_keys_are_named(model, tmp_path):
    path = tmp_path / "u.safetensors"
    save_model(path, model, metadata={})
    tensors = {**model.state_dict(), "extra.weight": torch.zeros(2)}
    _rewrite(path, tensors, {"width": 4})
    with pytest.raises(WeightsError, match=r"1 unexpected: extra\.weight"):
        load_model(path)


def test_shape_mismatch_gives_both_shapes(tmp_path, tiny_arch):
    path = _saved_with_width(tmp_path, tiny_arch, 6)
    _rewrite(path, dict(load_file_tensors(path)), {"width": 4})  # claims width 4, holds 6
    with pytest.raises(WeightsError) as err:
        load_model(path)
    msg = str(err.value)
    assert "shape mismatches" in msg
    assert "encode.weight file (6, 5, 3, 3) vs model (4, 5, 3, 3)" in msg


def load_file_tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_error_lists_only_the_first_names_and_counts_the_rest(tiny_arch):
    m = build(tiny_arch, width=4)
    tensors = {f"stray{i}": torch.zeros(1) for i in range(9)} | m.state_dict()
    with pytest.raises(WeightsError, match=r"9 unexpected: stray0, stray1, stray2, stray3, stray4 \(and 4 more\)"):
        weights.apply_state_dict(m, tensors, "f")


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "not a safetensors file"),
        (b"PK\x03\x04 a zip file, not weights" * 4, "not a safetensors file or is truncated"),
        ((20).to_bytes(8, "little") + b"{not json at all!!!}", "corrupt safetensors header"),
    ],
)
def test_foreign_or_corrupt_files_get_a_clear_message(tmp_path, content, expected):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=expected):
        load_model(path)


def test_truncated_file_is_reported(model, tmp_path):
    path = tmp_path / "cut.safetensors"
    save_model(path, model, metadata={})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(WeightsError, match="truncated or corrupt: tensor"):
        load_model(path)


def test_missing_file_and_foreign_safetensors(tmp_path, model):
    with pytest.raises(WeightsError, match="model file not found"):
        read_metadata(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file(model.state_dict(), str(foreign))  # no metadata: someone else's file
    with pytest.raises(WeightsError, match="no 'format_version' in its metadata; it was not written by"):
        read_metadata(foreign)


def test_unknown_architecture_names_the_known_ones(model, tmp_path, monkeypatch):
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, metadata={})
    monkeypatch.delitem(registry._GENERATORS, ARCH)
    with pytest.raises(WeightsError, match=rf"needs architecture '{ARCH}', which this Inpaint Studio does not have; known:"):
        load_model(path)


def test_bad_architecture_arguments(model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, metadata={})
    _rewrite(path, model.state_dict(), {"width": 4, "depth": 3})
    with pytest.raises(WeightsError, match="cannot build test_weights_tiny with"):
        load_model(path)


def test_newer_format_version_is_refused(model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, metadata={})
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path), metadata={**_raw_metadata(path), "format_version": "99"})
    with pytest.raises(WeightsError, match="format version 99; .* update the app"):
        read_metadata(path)


def test_legacy_pth_loads_plain_state_dicts_only(model, tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(model.state_dict(), plain)
    restored = build(ARCH, width=4)
    weights.apply_state_dict(restored, load_legacy_pth(plain), "plain.pth")
    assert torch.equal(restored.encode.weight, model.encode.weight)

    nested = tmp_path / "ckpt.pth"
    torch.save({"generator": model.state_dict(), "step": 3}, nested)
    assert set(load_legacy_pth(nested, key="generator")) == set(model.state_dict())
    with pytest.raises(WeightsError, match="pass key= to pick"):
        load_legacy_pth(nested)
    with pytest.raises(WeightsError, match="has no key 'netG'"):
        load_legacy_pth(nested, key="netG")


class _Payload:
    """An object whose unpickling would run code: weights_only must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_legacy_pth_with_arbitrary_objects_is_refused(tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": _Payload()}, evil)
    with pytest.raises(WeightsError, match="cannot be read safely"):
        load_legacy_pth(evil)
    assert "this must never run" not in capsys.readouterr().out


def test_check_model_file_finds_mismatches_without_loading_tensors(tmp_path, tiny_arch, monkeypatch):
    good = _saved_with_width(tmp_path, tiny_arch, 4)
    bad = _saved_with_width(tmp_path, tiny_arch, 6)
    _rewrite(bad, dict(load_file_tensors(bad)), {"width": 4})

    def refuse(*a, **k):
        raise AssertionError("check_model_file must not load tensors")

    monkeypatch.setattr(weights, "load_file", refuse)
    assert weights.check_model_file(good).arch_args == {"width": 4}
    with pytest.raises(WeightsError, match=r"decode.weight file \(3, 6, 1, 1\) vs model \(3, 4, 1, 1\)"):
        weights.check_model_file(bad)
