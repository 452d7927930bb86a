"""The engine registry's choices that do not need a model: the default among listed rows and
the messages for unknown engines."""

import pytest

from inpaint_studio.engine import (
    Availability,
    EngineInfo,
    EngineUnavailable,
    default_engine_among,
    get_engine,
)
from inpaint_studio.engine.registry import DEFAULT_DEEP_ENGINE, FALLBACK_ENGINE


def _row(name: str, available: bool) -> EngineInfo:
    reason = "" if available else "no weights"
    return EngineInfo(name, name, "", "deep", Availability(available, reason))


def test_default_is_the_deep_model_only_when_it_is_available():
    rows = [_row(FALLBACK_ENGINE, True), _row(DEFAULT_DEEP_ENGINE, True)]
    assert default_engine_among(rows) == DEFAULT_DEEP_ENGINE
    rows = [_row(FALLBACK_ENGINE, True), _row(DEFAULT_DEEP_ENGINE, False)]
    assert default_engine_among(rows) == FALLBACK_ENGINE
    assert default_engine_among([_row("other", True)]) == FALLBACK_ENGINE


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(EngineUnavailable, match=r"unknown engine 'nope'; known engines: .*patchmatch"):
        get_engine("nope", "cpu")


# ----------------------------------------------------------------------------- model folders
# One unreadable file in a models folder must cost only that model (issue 13, item 1).

import json  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from inpaint_studio import cli, weights  # noqa: E402
from inpaint_studio.engine import clear_cache, default_engine_name, list_engines  # noqa: E402
from inpaint_studio.engine.registry import IN_TRAINING_MARK  # noqa: E402
from inpaint_studio.networks import InpaintGenerator, build, registry as net_registry  # noqa: E402

TINY = "test_registry_tiny"


class _TinyGenerator(InpaintGenerator):
    stage_names = ("refined",)

    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(5, 3, 3, padding=1)

    def forward(self, image, mask, sketch=None):
        sketch = torch.zeros_like(mask) if sketch is None else sketch
        return (torch.tanh(self.conv(torch.cat([image, mask, sketch], 1))),)


@pytest.fixture
def models_dir(tmp_path, monkeypatch, data_dir):
    """An empty shipped folder and the user models folder, where the tests put files."""
    monkeypatch.setitem(net_registry._GENERATORS, TINY,
                        net_registry.ArchInfo(TINY, _TinyGenerator, "tiny"))
    shipped = tmp_path / "resources"
    (shipped / "models").mkdir(parents=True)
    monkeypatch.setenv("INPAINT_STUDIO_RESOURCES", str(shipped))
    clear_cache()
    yield weights_folder()
    clear_cache()


def weights_folder():
    from inpaint_studio import paths

    return paths.user_models_dir()


def _save_tiny(path, **metadata):
    return weights.save_model(path, build(TINY, width=4), metadata={"title": "Tiny", **metadata})


def _raw_model_file(path, header: bytes) -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def _listed(rows, name):
    return next(r for r in rows if r.name == name)


def test_unreadable_model_files_are_unavailable_with_a_reason_and_the_rest_still_work(models_dir, capsys):
    _save_tiny(models_dir / "good.safetensors")
    _raw_model_file(models_dir / "nested.safetensors", b"[" * 100_000 + b"]" * 100_000)
    os.symlink(models_dir / "gone.bin", models_dir / "dangling.safetensors")
    os.symlink("loop.safetensors", models_dir / "loop.safetensors")

    rows = list_engines("cpu")
    assert _listed(rows, "good").availability
    reasons = {name: _listed(rows, name).availability.reason
               for name in ("nested", "dangling", "loop")}
    assert not any(_listed(rows, name).availability for name in reasons)
    assert reasons["nested"] == "nested.safetensors has a corrupt safetensors header: JSON nested too deeply"
    assert reasons["dangling"].startswith("dangling.safetensors is a symbolic link to a missing file")
    assert reasons["loop"] == "loop.safetensors is a symbolic link that loops back on itself"
    assert _listed(rows, "patchmatch").availability
    assert default_engine_name("cpu") == FALLBACK_ENGINE

    assert cli.main(["engines", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "loops back on itself" in out and out.rstrip().endswith(f"default: {FALLBACK_ENGINE}")


def test_absurd_width_in_arch_args_is_a_one_line_reason(models_dir):
    meta = {"arch": json.dumps("deepfill_v2"), "arch_args": json.dumps({"cnum": 10**12}),
            "format_version": "1"}
    header = json.dumps({"__metadata__": meta}).encode()
    _raw_model_file(models_dir / "huge.safetensors", header)

    with pytest.raises(weights.WeightsError) as caught:
        weights.check_model_file(models_dir / "huge.safetensors")
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith("huge.safetensors: cannot build deepfill_v2 with")
    row = _listed(list_engines("cpu"), "huge")
    assert not row.availability and row.availability.reason == message


def test_header_claiming_more_values_than_its_bytes_is_corrupt(models_dir):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 8]},
                         "__metadata__": {"arch": json.dumps(TINY), "format_version": "1"}})
    path = models_dir / "short.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(8))
    with pytest.raises(weights.WeightsError, match=r"tensor 'w' \(F32 \(1000, 1000\)\) does not "
                                                   r"match its 8 bytes"):
        weights.read_metadata(path)


def test_model_in_training_is_listed_but_never_the_default(models_dir):
    path = models_dir / f"{DEFAULT_DEEP_ENGINE}.safetensors"
    _save_tiny(path, description="Shipped model")
    assert default_engine_name("cpu") == DEFAULT_DEEP_ENGINE  # a finished model is the default

    card = json.loads(weights.card_path(path).read_text())
    card.update(in_training=True, figures="hole L1 0.12 vs PatchMatch 0.09")
    weights.card_path(path).write_text(json.dumps(card))
    clear_cache()

    row = _listed(list_engines("cpu"), DEFAULT_DEEP_ENGINE)
    assert row.availability and row.in_training
    assert row.title == "Tiny" + IN_TRAINING_MARK
    assert row.description == "Shipped model (hole L1 0.12 vs PatchMatch 0.09)"
    assert default_engine_name("cpu") == FALLBACK_ENGINE
    assert get_engine(DEFAULT_DEEP_ENGINE, "cpu").name == DEFAULT_DEEP_ENGINE  # still choosable


def test_in_training_from_the_weights_metadata_and_a_title_that_says_so(models_dir):
    path = models_dir / f"{DEFAULT_DEEP_ENGINE}.safetensors"
    _save_tiny(path, title="DeepFill v2 (in training, step 40k)", in_training=True)
    row = _listed(list_engines("cpu"), DEFAULT_DEEP_ENGINE)
    assert row.in_training and row.title == "DeepFill v2 (in training, step 40k)"
    assert row.description == "tiny"  # the architecture's description; no figures to add
    assert default_engine_among([row, _listed(list_engines("cpu"), FALLBACK_ENGINE)]) == FALLBACK_ENGINE


def test_re_exporting_over_a_model_in_training_does_not_inherit_its_card_status(models_dir):
    path = models_dir / "m.safetensors"
    _save_tiny(path)
    weights.card_path(path).write_text(json.dumps({"in_training": True}))
    card = _save_tiny(path)
    assert not card.in_training and not weights.read_metadata(path).in_training


def test_engine_rows_say_whether_sketches_and_attention_apply(tmp_path, monkeypatch):
    """The app enables its sketch pen and attention view from these (issue 14 item 4)."""
    from inpaint_studio import networks
    from inpaint_studio.engine.deep import DeepEngine
    from inpaint_studio.engine.registry import engine_info
    from inpaint_studio.weights import save_model

    with_sketch = tmp_path / "with.safetensors"
    without = tmp_path / "without.safetensors"
    save_model(with_sketch, networks.build("deepfill_v2", cnum=8), metadata={})
    save_model(without, networks.build("deepfill_v2", cnum=8, use_sketch=False), metadata={})
    rows = {p.stem: engine_info(DeepEngine(p)) for p in (with_sketch, without)}
    assert rows["with"].uses_sketch and not rows["without"].uses_sketch
    assert rows["with"].has_attention and rows["without"].has_attention
    pconv = tmp_path / "pconv.safetensors"
    save_model(pconv, networks.build("pconv", cnum=8), metadata={})
    assert not engine_info(DeepEngine(pconv)).has_attention
    from inpaint_studio.engine import get_engine
    pm = engine_info(get_engine("patchmatch"))
    assert not pm.uses_sketch and not pm.has_attention
