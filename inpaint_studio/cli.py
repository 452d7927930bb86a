"""The ``inpaint-studio`` command: headless fills and the desktop app's launcher.

::

    inpaint-studio fill IMAGE --mask MASK [--sketch S] [--engine NAME] [--out PATH]
    inpaint-studio fill --input DIR --masks DIR --out DIR       (batch, masks matched by stem)
    inpaint-studio engines                                      (what can run here, and why not)
    inpaint-studio [app [IMAGE]]                                (the desktop app)

Exit codes: 0 success, 1 a file or engine failed (one ``error: ...`` line each, no
traceback), 2 a usage error. Inputs are never overwritten: a single fill refuses an output
path that exists (the input included) unless ``--overwrite``; a batch refuses an output
folder that is its input or masks folder or lies inside one. SIGTERM stops like Ctrl+C
(exit 143, no temporary files left behind).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Sequence

import numpy as np
from tqdm import tqdm

from . import imageio
from .termination import exit_status, terminate_like_interrupt
from .torch_check import unsafe_torch_warning
from .engine import (
    STRATEGIES,
    Engine,
    EngineUnavailable,
    FillOptions,
    FillRequest,
    default_engine_name,
    get_engine,
    list_engines,
)
from .engine.request import PRECISIONS, RECOMMENDED_TEXTURE, TEXTURES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
MASK_SUFFIX = "_mask"
DEVICES = ("auto", "cpu", "cuda", "mps")


class UsageError(Exception):
    """Arguments that do not make a valid command (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` reports every error alike."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inpaint-studio", description="Deep and classical image inpainting.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    fill = commands.add_parser(
        "fill",
        help="fill the holes of one photo, or of a folder of photos",
        description="Fill the masked holes of IMAGE (or of every photo in --input).",
    )
    fill.add_argument("image", nargs="?", type=Path, metavar="IMAGE", help="photo to fill")
    fill.add_argument("--mask", type=Path, help="hole mask for IMAGE (white = hole)")
    fill.add_argument("--sketch", type=Path, help="guidance lines for IMAGE (white = line)")
    fill.add_argument("--input", type=Path, metavar="DIR", help="folder of photos (batch mode)")
    fill.add_argument(
        "--masks", type=Path, metavar="DIR",
        help="folder of masks named like the photos: photo.jpg <- photo.png or photo_mask.png",
    )
    fill.add_argument(
        "--out", type=Path, metavar="PATH",
        help="output file (default: IMAGE_filled.EXT beside IMAGE); a folder in batch mode",
    )
    fill.add_argument("--engine", help="engine name (see `inpaint-studio engines`); "
                      "default: the shipped deep model, else patchmatch")
    fill.add_argument("--strategy", choices=STRATEGIES, default="crop",
                      help="how large photos are handled (default: crop around each hole)")
    fill.add_argument("--device", choices=DEVICES, default="auto", help="where deep models run")
    fill.add_argument("--precision", choices=PRECISIONS, default="auto",
                      help="deep models' arithmetic: auto (bf16 on CPUs with AMX or AVX512-BF16 "
                      "and on GPUs with bf16, else fp32), fp32 or bf16")
    fill.add_argument("--resize-mask", action="store_true",
                      help="scale a mask or sketch of another size to the photo (nearest)")
    fill.add_argument("--overwrite", action="store_true",
                      help="replace existing output files (the input photo included)")
    fill.add_argument("--seed", type=int, default=0, help="seed for randomised engines")
    fill.add_argument("--texture", choices=TEXTURES, default=RECOMMENDED_TEXTURE,
                      help="deep engines: re-synthesise the hole's texture at full resolution "
                      "with PatchMatch guided by the model's fill (default: %(default)s)")
    fill.add_argument("--no-harmonise", dest="harmonise", action="store_false",
                      help="deep engines: keep the model's fill as it came, without shifting it "
                      "to meet the photo's colours along the hole's edge")
    fill.set_defaults(run=_run_fill)

    engines = commands.add_parser("engines", help="list engines and whether they can run here")
    engines.add_argument("--device", choices=DEVICES, default="auto")
    engines.set_defaults(run=_run_engines)

    app = commands.add_parser("app", help="start the desktop app (the default)")
    app.add_argument("image", nargs="?", type=Path, metavar="IMAGE", help="photo to open")
    app.set_defaults(run=_run_app)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inpaint-studio`` console script; returns the exit code."""
    parser = build_parser()
    terminate_like_interrupt()  # SIGTERM unwinds like Ctrl+C: no half-written temp files
    warning = unsafe_torch_warning()
    if warning:
        print(warning, file=sys.stderr)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _error(f"{exc} (see inpaint-studio --help)")
        return 2
    except SystemExit as exc:  # --help and --version print and exit 0
        return int(exc.code or 0)
    run = getattr(args, "run", _run_app)
    try:
        return run(args)
    except UsageError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt as exc:
        status = exit_status(exc)
        _error("interrupted" if status == 130 else "terminated")
        return status


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------- app / engines


def _run_app(args: argparse.Namespace) -> int:
    # Imported here: Qt loads only when the GUI is asked for, so headless use stays light.
    from inpaint_studio.ui.app import main as run_app

    image = getattr(args, "image", None)
    return run_app([str(image)] if image else [])


def _run_engines(args: argparse.Namespace) -> int:
    rows = [
        (info.name, info.kind, "yes" if info.availability else "no",
         info.description if info.availability else info.availability.reason)
        for info in list_engines(args.device)
    ]
    header = ("ENGINE", "KIND", "AVAILABLE", "DESCRIPTION / WHY NOT")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    print(f"default: {default_engine_name(args.device)}")
    return 0


# ----------------------------------------------------------------------------- fill


def _run_fill(args: argparse.Namespace) -> int:
    batch = args.input is not None or args.masks is not None
    if batch:
        if args.image is not None or args.mask is not None or args.sketch is not None:
            raise UsageError("give either IMAGE --mask MASK or --input DIR --masks DIR, not both")
        if args.input is None or args.masks is None or args.out is None:
            raise UsageError("folder mode needs --input DIR, --masks DIR and --out DIR")
        return _fill_folder(args)
    if args.image is None or args.mask is None:
        raise UsageError("fill needs IMAGE and --mask MASK (or --input/--masks/--out folders)")
    return _fill_single(args)


def _open_engine(args: argparse.Namespace) -> Engine | None:
    name = args.engine or default_engine_name(args.device)
    try:
        return get_engine(name, args.device)
    except EngineUnavailable as exc:
        _error(str(exc))
        return None


def _options(args: argparse.Namespace) -> FillOptions:
    return FillOptions(strategy=args.strategy, device=args.device, seed=args.seed, texture=args.texture,
                       precision=args.precision, harmonise=args.harmonise)


@dataclass
class FillResult:
    """What one file's fill produced: the output path, ``(stage name, seconds)`` pairs, notes
    for the user, and the precision a deep model ran in (``fp32``/``bf16``/``fp16``; empty
    for classical engines)."""

    out: Path
    stages: list[tuple[str, float]]
    notes: list[str]
    precision: str = ""


def fill_file(
    engine: Engine,
    image_path: Path,
    mask_path: Path,
    out: Path,
    options: FillOptions,
    sketch_path: Path | None = None,
    resize_mask: bool = False,
    overwrite: bool = False,
) -> FillResult:
    """Load, fill and save one photo; the output keeps the photo's format and metadata.

    Raises :class:`~inpaint_studio.imageio.ImageLoadError`,
    :class:`~inpaint_studio.imageio.MaskSizeError` for bad inputs, then
    :class:`FileExistsError` when ``out`` exists (or is the input) and ``overwrite`` is False;
    all before the engine runs. The inputs are checked first so that one run names every
    problem a retry with ``--overwrite`` would still meet.
    """
    photo = imageio.load_image(image_path)
    hint = "pass --resize-mask to scale it"
    mask = imageio.load_mask(mask_path, size=photo.size, resize=resize_mask, resize_hint=hint)
    sketch = (
        imageio.load_sketch(sketch_path, size=photo.size, resize=resize_mask, resize_hint=hint)
        if sketch_path is not None else None
    )
    if out.resolve() == image_path.resolve() and not overwrite:
        raise FileExistsError(f"refusing to overwrite the input {image_path} (use --overwrite)")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (use --overwrite to replace it)")
    request = FillRequest(photo.rgb, mask, sketch, options)
    stages: list[tuple[str, float]] = []
    notes = list(photo.notes)
    if not mask.any():
        notes.append(f"{mask_path} marks no hole; the photo is written unchanged")
    result: np.ndarray | None = None
    ran_in = ""
    for stage in engine.fill(request):
        stages.append((stage.name, stage.seconds))
        ran_in = str(stage.extras.get("precision", ran_in))
        if "note" in stage.extras:
            notes.append(str(stage.extras["note"]))
        result = stage.image
    if result is None:
        raise RuntimeError(f"engine {engine.name} produced no result")
    imageio.save_image(out, result, like=photo, overwrite=overwrite)
    return FillResult(out, stages, notes, ran_in)


def _fill_single(args: argparse.Namespace) -> int:
    image: Path = args.image
    out = args.out or image.with_name(f"{image.stem}_filled{image.suffix}")
    if out.is_dir():
        out = out / image.name
    engine = _open_engine(args)
    if engine is None:
        return 1
    try:
        result = fill_file(
            engine, image, args.mask, out, _options(args),
            sketch_path=args.sketch, resize_mask=args.resize_mask, overwrite=args.overwrite,
        )
    except (OSError, ValueError, EngineUnavailable) as exc:  # bad input, not a bug: one line
        _error(str(exc))
        return 1
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for name, seconds in result.stages:
        print(f"{name:<10} {seconds:8.3f} s")
    ran_in = f", {result.precision}" if result.precision else ""
    print(f"wrote {result.out} ({engine.name}{ran_in})")
    return 0


def find_mask(masks_dir: Path, stem: str, beside_photos: bool = False) -> Path:
    """The mask of photo ``stem`` in ``masks_dir``: ``stem_mask.*`` first, then ``stem.*``
    (any image suffix). With ``beside_photos`` (masks in the photos' own folder) only
    ``stem_mask.*`` counts: ``stem.*`` there is the photo itself, or another photo.
    Raises FileNotFoundError / ValueError naming what was looked for."""
    names = (stem + MASK_SUFFIX,) if beside_photos else (stem + MASK_SUFFIX, stem)
    for name in names:
        hits = sorted(
            p for p in masks_dir.iterdir()
            if p.stem == name and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if len(hits) > 1:
            raise ValueError(f"several masks match: {', '.join(p.name for p in hits)}")
        if hits:
            return hits[0]
    wanted = " or ".join(f"{name}.*" for name in names)
    raise FileNotFoundError(f"no mask named {wanted} in {masks_dir}")


def _photos_in(folder: Path, same_as_masks: bool) -> list[Path]:
    photos = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if same_as_masks:  # photos and masks side by side: the *_mask files are not photos
        photos = [p for p in photos if not p.stem.endswith(MASK_SUFFIX)]
    return photos


# A batch this long compiles the fused gating in the background while its first photos fill
# (a compile costs ~8 s of CPU, once Inductor's disk cache holds it a few; each bf16 512 px fill
# then saves ~0.2 s on a 2-core CPU). A single photo never waits for it.
FUSED_GATING_MIN_PHOTOS = 16


def _fill_folder(args: argparse.Namespace) -> int:
    for name, folder in (("--input", args.input), ("--masks", args.masks)):
        if not folder.is_dir():
            raise UsageError(f"{name} {folder} is not a folder")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} must be a folder in folder mode")
    out = args.out.resolve()
    for name, folder in (("--input", args.input), ("--masks", args.masks)):
        folder = folder.resolve()
        if out == folder or folder in out.parents:
            what = "the photos" if name == "--input" else "the masks"
            raise UsageError(f"--out {args.out} is {'' if out == folder else 'inside '}the "
                             f"{name} folder: {what} would be overwritten; choose another folder")
    beside_photos = args.input.resolve() == args.masks.resolve()
    photos = _photos_in(args.input, beside_photos)
    if not photos:
        _error(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {args.input}")
        return 1
    engine = _open_engine(args)
    if engine is None:
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    options = _options(args)
    if engine.kind == "deep" and len(photos) >= FUSED_GATING_MIN_PHOTOS:
        from .engine.warm_up import start_fused_gating_warm_up

        start_fused_gating_warm_up(args.device, args.precision)

    failures: list[tuple[str, str]] = []
    for photo in tqdm(photos, desc="filling", unit="photo", file=sys.stderr):
        try:
            fill_file(
                engine, photo, find_mask(args.masks, photo.stem, beside_photos),
                args.out / photo.name, options,
                resize_mask=args.resize_mask, overwrite=args.overwrite,
            )
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            failures.append((photo.name, str(exc) or type(exc).__name__))

    done = len(photos) - len(failures)
    print(f"filled {done} of {len(photos)} photos into {args.out} ({engine.name})")
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for name, reason in failures:
            print(f"  {name}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
