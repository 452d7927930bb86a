"""Model files: a generator's weights in safetensors with a self-describing JSON header.

A model file ``X.safetensors`` holds the generator's ``state_dict`` and, in the safetensors
``__metadata__`` (a string-to-string map), these keys, each a JSON document:

* ``arch``: registry name (``"deepfill_v2"``); ``arch_args``: the keyword arguments that
  :func:`inpaint_studio.networks.build` takes to rebuild the network.
* ``format_version``: :data:`FORMAT_VERSION`; ``dtype``: ``"float32"`` or ``"float16"`` (how
  floating tensors are stored; always loaded as float32).
* ``title``, ``description``: what the app shows in its engine selector.
* ``provenance``: how it was trained (data, steps, images seen, hardware, time, base model).
* ``metrics``: evaluation figures.
* any further key the caller passes (e.g. ``working_size``).

A human-readable model card ``X.json`` with the same fields is written beside it.

Nothing here unpickles: tensors are read by safetensors, and a legacy ``.pth`` only through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save as save_to_bytes
from torch import nn

from .fileutil import atomic_write

FORMAT_VERSION = 1
#: ``X.train-state.safetensors`` beside a model ``X.safetensors`` is the trainer's relay state
#: (what the next training run resumes from, ``trainer/relay.py``), not a model: the engine
#: discovery skips it.
TRAINING_STATE_SUFFIX = ".train-state.safetensors"

# Header keys save_model fills itself; the rest of the metadata comes from the caller.
_RESERVED = ("arch", "arch_args", "format_version", "dtype")
_STORED_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# safetensors refuses headers above 100 MB; a larger length field means a foreign file.
_MAX_HEADER_BYTES = 100_000_000
# Bytes per value of the safetensors dtypes a model can hold.
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1}
# How many names an error message lists before summarising the rest as a count.
_NAMES_SHOWN = 5


class WeightsError(ValueError):
    """A model file that cannot be read or does not fit its architecture (message says why)."""


@dataclass(frozen=True)
class TensorInfo:
    """Name-level view of one stored tensor (from the header; no data read)."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about itself, read from its header alone.

    path: the ``.safetensors`` file.
    arch / arch_args: how to rebuild the generator.
    dtype: ``float32`` or ``float16`` storage.
    provenance / metrics: free-form JSON objects (training record, evaluation figures).
    extra: any further metadata keys (e.g. ``working_size``), JSON-decoded.
    tensors: stored tensor names with dtype and shape.
    """

    path: Path
    arch: str
    arch_args: dict[str, Any]
    format_version: int
    title: str
    description: str
    provenance: dict[str, Any]
    metrics: dict[str, Any]
    dtype: str
    extra: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def in_training(self) -> bool:
        """The card says the model is still being trained (``"in_training": true``): the app
        lists it but never picks it as the default engine."""
        return self.extra.get("in_training") is True

    @property
    def figures(self) -> str:
        """The card's one-line quality figures (``"figures"``, e.g. hole L1 against PatchMatch),
        or an empty string."""
        value = self.extra.get("figures")
        return value if isinstance(value, str) else ""

    @property
    def parameter_count(self) -> int:
        """Number of stored values (parameters and buffers)."""
        total = 0
        for info in self.tensors.values():
            n = 1
            for d in info.shape:
                n *= d
            total += n
        return total

    def to_json(self) -> dict[str, Any]:
        """The card as a JSON object (what ``X.json`` beside the weights holds)."""
        return {
            "file": self.path.name,
            "title": self.title,
            "description": self.description,
            "arch": self.arch,
            "arch_args": self.arch_args,
            "format_version": self.format_version,
            "dtype": self.dtype,
            "parameters": self.parameter_count,
            "provenance": self.provenance,
            "metrics": self.metrics,
            **self.extra,
        }


def card_path(weights_path: str | os.PathLike) -> Path:
    """The model card ``X.json`` that belongs beside ``X.safetensors``."""
    return Path(weights_path).with_suffix(".json")


# ---------------------------------------------------------------------------------------------
# Saving


def _json(value: Any, key: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata {key!r} is not JSON-serialisable: {exc}") from None


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    metadata: Mapping[str, Any],
    fp16: bool = False,
) -> ModelCard:
    """Write ``model``'s weights to ``path`` (``.safetensors``) and its card beside it.

    model: a generator built by :func:`inpaint_studio.networks.build` (it carries ``arch`` and
        ``arch_args``).
    metadata: ``title``, ``description``, ``provenance`` (dict), ``metrics`` (dict) and any
        further JSON-serialisable keys; ``arch``/``arch_args`` may be given only if they agree
        with the model's.
    fp16: store floating tensors as float16 (half the file; loads back as float32).

    Both files are written atomically. Returns the card the header states.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"model files end in .safetensors, got {path.name!r}")
    arch = getattr(model, "arch", "")
    arch_args = dict(getattr(model, "arch_args", {}) or {})
    if not arch:
        raise ValueError(
            "model has no architecture name; build it with inpaint_studio.networks.build(...)"
        )
    for key, own in (("arch", arch), ("arch_args", arch_args)):
        if key in metadata and metadata[key] != own:
            raise ValueError(f"metadata {key}={metadata[key]!r} disagrees with the model's {own!r}")
    for key in ("provenance", "metrics"):
        if not isinstance(metadata.get(key, {}), Mapping):
            raise ValueError(f"metadata {key!r} must be a dict, got {type(metadata[key]).__name__}")

    dtype = "float16" if fp16 else "float32"
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(_STORED_DTYPES[dtype])
        # clone: safetensors refuses tensors that share storage (tied or viewed weights).
        tensors[name] = t.contiguous().clone()

    header: dict[str, str] = {
        "arch": _json(arch, "arch"),
        "arch_args": _json(arch_args, "arch_args"),
        "format_version": _json(FORMAT_VERSION, "format_version"),
        "dtype": _json(dtype, "dtype"),
        "title": _json(str(metadata.get("title") or path.stem), "title"),
        "description": _json(str(metadata.get("description", "")), "description"),
        "provenance": _json(dict(metadata.get("provenance", {})), "provenance"),
        "metrics": _json(dict(metadata.get("metrics", {})), "metrics"),
    }
    for key, value in metadata.items():
        if key not in header:
            header[key] = _json(value, key)

    # Atomic: a crash mid-write must never leave a half file under the final name (the app
    # would list it and fail to load it).
    payload = save_to_bytes(tensors, metadata=header)
    atomic_write(path, lambda f: f.write(payload), make_parents=True)
    # The header alone: an older card beside the file describes the model being replaced.
    card = _header_card(path)
    card_text = json.dumps(card.to_json(), indent=2, sort_keys=False) + "\n"
    atomic_write(card_path(path), lambda f: f.write(card_text.encode()))
    return card


# ---------------------------------------------------------------------------------------------
# Reading


def _missing_file_reason(path: Path) -> str:
    """Why ``path`` is not a readable regular file, in the user's terms."""
    if path.is_symlink():
        try:
            path.stat()
        except RuntimeError:  # Python < 3.13 reports a symlink loop this way
            return f"{path.name} is a symbolic link that loops back on itself"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{path.name} is a symbolic link that loops back on itself"
            return f"{path.name} is a symbolic link to a missing file ({os.readlink(path)})"
    if path.exists():
        return f"{path.name} is not a regular file"
    return f"model file not found: {path}"


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header (8-byte little-endian length, then JSON), checked."""
    if not path.is_file():
        raise WeightsError(_missing_file_reason(path))
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path.name} is not a safetensors file (only {size} bytes)")
            (length,) = struct.unpack("<Q", head)
            if length == 0 or length > min(size - 8, _MAX_HEADER_BYTES):
                raise WeightsError(
                    f"{path.name} is not a safetensors file or is truncated "
                    f"(header claims {length} bytes, file has {size})"
                )
            raw = f.read(length)
    except OSError as exc:
        raise WeightsError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    header = _parse_json(raw, f"{path.name} has a corrupt safetensors header")
    if not isinstance(header, dict):
        raise WeightsError(f"{path.name} has a corrupt safetensors header (not a JSON object)")
    data_bytes = size - 8 - length
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_bytes
        ):
            raise WeightsError(
                f"{path.name} is truncated or corrupt: tensor {name!r} lies beyond the end "
                f"of the file"
            )
    return header


def _parse_json(raw: bytes | str, problem: str) -> Any:
    """JSON from an untrusted file; every way it can fail is a :class:`WeightsError` starting
    with ``problem`` (a deeply nested document exhausts Python's recursion limit)."""
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{problem}: {exc}") from None
    except RecursionError:
        raise WeightsError(f"{problem}: JSON nested too deeply") from None


def _decode(meta: Mapping[str, str], key: str, path: Path, default: Any = None) -> Any:
    if key not in meta:
        if default is None:
            raise WeightsError(
                f"{path.name} has no {key!r} in its metadata; it was not written by "
                f"Inpaint Studio (convert it with inpaint_studio.weights.save_model)"
            )
        return default
    value = meta[key]
    if not isinstance(value, str):
        raise WeightsError(f"{path.name}: metadata {key!r} is not a string")
    return _parse_json(value, f"{path.name}: metadata {key!r} is not valid JSON ({value[:40]!r})")


def read_metadata(path: str | os.PathLike) -> ModelCard:
    """The card of a model file, from its header (no tensor data is read), with
    ``in_training`` and ``figures`` taken from the card ``X.json`` beside it when it has them.

    Raises :class:`WeightsError` for a missing, corrupt or foreign file, or one written by a
    newer format version.
    """
    card = _header_card(Path(path))
    status = _sidecar_status(card.path)
    if not status:
        return card
    return dataclasses.replace(card, extra={**card.extra, **status})


def _header_card(path: Path) -> ModelCard:
    """The card as the weights file's own header states it."""
    header = _read_header(path)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise WeightsError(f"{path.name} has corrupt metadata (not a JSON object)")
    version = _decode(meta, "format_version", path)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise WeightsError(
            f"{path.name} has format version {version!r}; this Inpaint Studio reads up to "
            f"{FORMAT_VERSION}: update the app"
        )
    arch = _decode(meta, "arch", path)
    arch_args = _decode(meta, "arch_args", path, default={})
    if not isinstance(arch, str) or not isinstance(arch_args, dict):
        raise WeightsError(f"{path.name}: 'arch' must be a name and 'arch_args' an object")
    known = {"arch", "arch_args", "format_version", "dtype", "title", "description",
             "provenance", "metrics"}
    extra = {k: _decode(meta, k, path) for k in meta if k not in known}
    tensors = {
        name: _tensor_info(path, name, info) for name, info in header.items() if name != "__metadata__"
    }
    return ModelCard(
        path=path,
        arch=arch,
        arch_args=arch_args,
        format_version=version,
        title=str(_decode(meta, "title", path, default=path.stem)),
        description=str(_decode(meta, "description", path, default="")),
        provenance=_decode(meta, "provenance", path, default={}),
        metrics=_decode(meta, "metrics", path, default={}),
        dtype=str(_decode(meta, "dtype", path, default="float32")),
        extra=extra,
        tensors=tensors,
    )


# Keys of the model card ``X.json`` that may say more than the weights' header: the card is
# rewritten while a model trains on, the weights file is not.
_SIDECAR_KEYS = ("in_training", "figures")


def _sidecar_status(path: Path) -> dict[str, Any]:
    """``in_training`` and ``figures`` from the card ``X.json`` beside ``path`` when present.

    The card is informational: a missing or unreadable one changes nothing (the weights'
    own metadata keeps its say).
    """
    try:
        card = json.loads(card_path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    if not isinstance(card, dict):
        return {}
    return {key: card[key] for key in _SIDECAR_KEYS if key in card}


def _tensor_info(path: Path, name: str, info: Mapping[str, Any]) -> TensorInfo:
    """One header entry, checked: a shape of non-negative ints whose byte size is the span
    its ``data_offsets`` give (a header cannot claim more values than the file holds)."""
    shape = info.get("shape", ())
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise WeightsError(f"{path.name} is corrupt: tensor {name!r} has shape {shape!r}")
    dtype = str(info.get("dtype"))
    start, end = info["data_offsets"]
    count = 1
    for d in shape:
        count *= d
    if dtype in _DTYPE_BYTES and count * _DTYPE_BYTES[dtype] != end - start:
        raise WeightsError(
            f"{path.name} is corrupt: tensor {name!r} ({dtype} {tuple(shape)}) does not match "
            f"its {end - start} bytes"
        )
    return TensorInfo(dtype, tuple(shape))


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def _check_fit(
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, tuple[int, ...]],
    model_name: str,
    source: str,
) -> None:
    """Raise :class:`WeightsError` unless ``found`` has exactly ``expected``'s names and shapes;
    the message lists the missing, unexpected and shape-mismatched names (the first few of
    each, with counts)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
    if not (missing or unexpected or mismatched):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_names(unexpected)}")
    if mismatched:
        pairs = [f"{n} file {found[n]} vs model {expected[n]}" for n in mismatched]
        problems.append(f"{len(mismatched)} shape mismatches: {_names(pairs)}")
    raise WeightsError(f"{source} does not fit {model_name}: " + "; ".join(problems))


def _shapes(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in tensors.items()}


def apply_state_dict(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``model`` after checking names and shapes.

    Floating tensors are cast to the model's dtype (float16 files load as float32).
    Raises :class:`WeightsError` listing the missing, unexpected and shape-mismatched names
    (the first few of each, with counts); ``source`` names the file in the message.
    """
    expected = model.state_dict()
    _check_fit(_shapes(expected), _shapes(tensors), type(model).__name__, source)
    cast = {
        name: t.to(expected[name].dtype) if t.is_floating_point() else t
        for name, t in tensors.items()
    }
    model.load_state_dict(cast, strict=True)


def _build(card: ModelCard) -> nn.Module:
    from . import networks

    if card.arch not in networks.generator_names():
        raise WeightsError(
            f"{card.path.name} needs architecture {card.arch!r}, which this Inpaint Studio does "
            f"not have; known: {', '.join(networks.generator_names()) or 'none'}"
        )
    try:
        return networks.build(card.arch, **card.arch_args)
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        # RuntimeError: torch refuses sizes it cannot allocate (an absurd width); its message
        # can carry a C++ stack, so only the first line is kept.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{card.path.name}: cannot build {card.arch} with {_short(card.arch_args)}: "
            f"{first_line[:200]}"
        ) from None


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_model_file(path: str | os.PathLike) -> ModelCard:
    """Everything :func:`load_model` checks, without reading tensor data: the header, the
    architecture, its arguments, and every stored name and shape against the network built on
    the ``meta`` device (no memory allocated). Returns the card; raises :class:`WeightsError`."""
    card = read_metadata(path)
    with torch.device("meta"):
        model = _build(card)
    found = {name: info.shape for name, info in card.tensors.items()}
    _check_fit(_shapes(model.state_dict()), found, type(model).__name__, card.path.name)
    return card


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Rebuild the generator a model file describes and load its weights.

    Returns ``(generator, card)``; the generator is in eval mode, float32, on ``device``.
    Raises :class:`WeightsError` for a corrupt or foreign file, an architecture this app does
    not know, arguments the architecture refuses, or weights that do not fit.
    """
    # Checked on the meta device first: a header asking for an absurd network is refused
    # before anything is allocated.
    card = check_model_file(path)
    model = _build(card)
    try:
        tensors = load_file(str(card.path), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise WeightsError(f"{card.path.name} is corrupt: {exc}") from None
    apply_state_dict(model, tensors, card.path.name)
    return model.eval().to(device), card


def load_legacy_pth(path: str | os.PathLike, *, key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a legacy PyTorch ``.pth``, read with ``torch.load(weights_only=True)``.

    key: take the state dict stored under this top-level key (e.g. ``"generator"``) of a
        checkpoint that holds several. Without it, the file itself must be a name-to-tensor
        mapping.
    A file that needs arbitrary unpickling (custom classes, code) is refused, never executed.
    Feed the result to :func:`apply_state_dict`, then :func:`save_model` to convert.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign pickles
        raise WeightsError(
            f"{path.name} cannot be read safely (weights_only=True refuses it; only plain "
            f"tensors and containers are allowed): {str(exc).splitlines()[0]}"
        ) from None
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            top = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise WeightsError(f"{path.name} has no key {key!r}; it holds {top}")
        obj = obj[key]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        top = sorted(map(str, obj))[:_NAMES_SHOWN] if isinstance(obj, dict) else type(obj).__name__
        raise WeightsError(
            f"{path.name} is not a name-to-tensor state dict (top level: {top}); "
            f"pass key= to pick the one inside"
        )
    return dict(obj)
