"""Command line: ``python -m trainer {train,finetune,evaluate,export} ...`` (= ``inpaint-train``).

Under ``torchrun`` the same commands train with DDP, one process per GPU (or CPU process).
User mistakes (missing folder, missing VGG weights, bad option values) end with a one-line
``error: ...`` message and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .config import FINETUNE_DEFAULTS, TrainConfig, add_config_options, config_from_args

DESCRIPTION = """Train, fine-tune, evaluate and export Inpaint Studio models.

  train     train an architecture from scratch on photo folders
  finetune  adapt a shipped model to your own photos, then export it for the app
  evaluate  L1/PSNR/SSIM by hole-ratio bin of a model file on photos with fixed masks
  export    turn a training checkpoint into a .safetensors model the app loads

Several GPUs: torchrun --nproc_per_node N -m trainer train ...
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inpaint-train", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train from scratch (or --resume a run)",
                           description="Train an architecture from scratch on photo folders.")
    add_config_options(train, skip=("init", "export"))

    finetune = sub.add_parser(
        "finetune", help="fine-tune a model file on your photos and export it",
        description="Fine-tune a .safetensors model on your photos (fresh discriminator, lower "
                    "learning rate, early stopping), then export the best EMA generator. "
                    "Defaults differ from train: " +
                    ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in FINETUNE_DEFAULTS.items()))
    add_config_options(finetune)

    evaluate = sub.add_parser(
        "evaluate", help="score a model file by hole-ratio bin",
        description="Fill photos with fixed masks through the app's engine and print L1 "
                    "(hole and image), PSNR and SSIM per hole-ratio bin.")
    evaluate.add_argument("--model", required=True, type=Path,
                          help="the .safetensors model file to evaluate")
    evaluate.add_argument("--data", required=True, type=Path,
                          help="folder of photos (never photos the model trained on)")
    evaluate.add_argument("--masks", type=Path, default=None,
                          help="folder of fixed masks (255 = hole); photo i gets mask i mod n; "
                               "default: masks generated from --seed")
    evaluate.add_argument("--pairs", type=Path, default=None,
                          help="TSV with columns image, mask (like shared/data/eval_pairs.tsv); "
                               "images under --data, masks under --masks (default: masks/ beside "
                               "the TSV)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="seed of the generated masks (default: 0)")
    evaluate.add_argument("--limit", type=int, default=0,
                          help="evaluate only the first N cases (default: 0 = all)")
    evaluate.add_argument("--device", default="auto",
                          help="auto, cpu, cuda or mps (default: auto)")
    evaluate.add_argument("--strategy", default="crop", choices=("crop", "resize", "full"),
                          help="HD strategy, as in the app (default: crop)")
    evaluate.add_argument("--json", type=Path, default=None,
                          help="also write the per-bin and per-case figures to this JSON file")

    export = sub.add_parser(
        "export", help="checkpoint -> .safetensors model for the app",
        description="Write the EMA generator of a checkpoint (or a run folder: its best, else "
                    "last checkpoint) as a .safetensors model with its model card.")
    export.add_argument("--checkpoint", required=True, type=Path,
                        help="a checkpoint file (last.pt / best.pt) or a run folder")
    export.add_argument("--out", type=Path, default=None,
                        help="the .safetensors file to write (default: the user models folder, "
                             "named after the run folder)")
    export.add_argument("--title", default="", help="title shown in the app (default: the run's)")
    export.add_argument("--fp32", action="store_true",
                        help="store float32 weights (default: float16, half the size)")
    return parser


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from .relay import load_resume_state

    if getattr(args, "resume", ""):
        # A run folder, a checkpoint file or a relay state (.safetensors, trainer/relay.py).
        saved = TrainConfig.from_json(load_resume_state(args.resume)["config"])
        _refuse_architecture_change(args, saved, f"--resume {args.resume}", same_weights_ok=True)
        return config_from_args(args, base=dataclasses.replace(saved, resume=args.resume))
    defaults = FINETUNE_DEFAULTS if args.command == "finetune" else {}
    cfg = config_from_args(args, defaults=defaults)
    if args.command == "finetune":
        from inpaint_studio.weights import read_metadata

        if not cfg.init:
            raise ValueError("finetune needs --init MODEL.safetensors (the model to start from)")
        card = read_metadata(cfg.init)
        gen_args, attention = TrainConfig.split_generator_args(card.arch_args)
        model = TrainConfig(arch=card.arch, gen_args=gen_args, attention=attention)
        _refuse_architecture_change(args, model, f"--init {cfg.init}")
        cfg = dataclasses.replace(cfg, arch=card.arch, gen_args=gen_args, attention=attention)
    from .recipes import get_recipe

    try:
        get_recipe(cfg.arch)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return cfg


def _refuse_architecture_change(args: argparse.Namespace, model: TrainConfig, source: str,
                                same_weights_ok: bool = False) -> None:
    """A run that continues a model keeps its architecture: options that would build another
    network are an error rather than silently ignored. ``same_weights_ok``: a ``--gen-args``
    whose generator has the same parameter names and shapes (another up-sampling mode, say)
    is a change the saved weights carry over to, and is allowed (a resumed run)."""
    for name in ("arch", "gen_args", "attention"):
        given = getattr(args, name, None)
        if given is None or given == getattr(model, name):
            continue
        if name == "gen_args" and same_weights_ok and _same_parameters(model, given):
            print(f"{source}: the generator continues with gen_args {given!r} (was "
                  f"{model.gen_args!r}; same weights)", file=sys.stderr)
            continue
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{source} is a {model.arch} model with {name} "
                         f"{getattr(model, name)!r}; {flag} {given!r} cannot change it")


def _same_parameters(model: TrainConfig, gen_args: dict) -> bool:
    """Whether ``model``'s generator and the one ``gen_args`` would build in its place have the
    same state-dict names and shapes (False when the new one cannot be built)."""
    from inpaint_studio import networks

    try:
        shapes = [{k: tuple(v.shape) for k, v in
                   networks.build(c.arch, **c.generator_args()).state_dict().items()}
                  for c in (model, dataclasses.replace(model, gen_args=gen_args))]
    except (TypeError, ValueError):
        return False
    return shapes[0] == shapes[1]


def _run_training(args: argparse.Namespace) -> int:
    from .loop import train

    cfg = _train_config(args)
    result = train(cfg)
    if not _is_rank0():
        return 0
    why = {"steps": "all steps done", "early_stop": "early stop: validation L1 stopped "
           "improving", "time": "--max-minutes reached"}[result.stopped]
    best = "none" if result.best_val_l1 is None else f"{result.best_val_l1:.4f}"
    print(f"{args.command}: stopped after {result.step} steps ({why}); best validation L1 "
          f"{best}; run folder {result.out_dir}")
    if args.command == "finetune":
        from .export import export_checkpoint
        from .progress import append_event

        card = export_checkpoint(result.out_dir, cfg.export or None, title=cfg.title,
                                 extra_provenance={"base_model_file": Path(cfg.init).name})
        append_event(result.out_dir, "export", result.step, path=str(card.path))
        print(f"exported {card.path}")
    return 0


def _is_rank0() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_model, evaluation_pairs, write_report

    pairs = evaluation_pairs(args.data, args.masks, args.pairs, seed=args.seed, limit=args.limit)
    report = evaluate_model(args.model, pairs, device=args.device, strategy=args.strategy)
    print(report.table())
    if args.json:
        write_report(report, args.json)
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from .export import export_checkpoint

    card = export_checkpoint(args.checkpoint, args.out, fp16=not args.fp32, title=args.title)
    print(f"exported {card.path} ({card.parameter_count:,} values, {card.dtype})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from inpaint_studio.termination import exit_status, terminate_like_interrupt
    from inpaint_studio.torch_check import unsafe_torch_warning

    args = _parser().parse_args(argv)
    # SIGTERM (torchrun, a scheduler, the app's Stop) unwinds like Ctrl+C: the checkpoint
    # being written is not left as a temp file, and the log records the stop.
    terminate_like_interrupt()
    warning = unsafe_torch_warning()
    if warning:
        print(warning, file=sys.stderr)
    from inpaint_studio.engine.base import EngineUnavailable
    from inpaint_studio.weights import WeightsError

    from .checkpoint import CheckpointError

    run = {"train": _run_training, "finetune": _run_training, "evaluate": _run_evaluate,
           "export": _run_export}[args.command]
    try:
        return run(args)
    except (ValueError, FileNotFoundError, CheckpointError, WeightsError,
            EngineUnavailable) as exc:
        # FileNotFoundError covers VGGWeightsMissing, whose message says what to supply.
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        status = exit_status(exc)
        print(f"error: {'interrupted' if status == 130 else 'terminated'}", file=sys.stderr)
        return status


def one_line(exc: BaseException) -> str:
    """The user's part of an error message: a data-loader worker's error arrives wrapped in
    a worker traceback, whose last line is the message itself."""
    text = str(exc).strip() or type(exc).__name__
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    name, _, message = last.partition(": ")
    return message if message and name.replace(".", "").isidentifier() else last


if __name__ == "__main__":
    sys.exit(main())
