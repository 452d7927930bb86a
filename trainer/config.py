"""The training configuration: one dataclass, its command-line options and its JSON file.

Every field of :class:`TrainConfig` carries its help text in ``metadata["help"]``; the
command-line parser is built from the fields, so an option cannot exist without a help line.
A run writes its configuration as ``config.json`` in its output folder beside the checkpoints
(and inside every checkpoint), so a run can be resumed or exported from its folder alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpaint_studio.fileutil import atomic_write

AMP_MODES = ("auto", "bf16", "fp16", "off")
# `--precision` speaks the app's and `inpaint-studio fill`'s words (inpaint_studio.precision);
# it sets the same field as `--amp`, with fp32 meaning "off".
PRECISION_TO_AMP = {"auto": "auto", "fp32": "off", "bf16": "bf16", "fp16": "fp16"}
# inpaint_studio.layers.attention.ATTENTION_NAMES, spelled out so that `--help` does not import
# torch (a test keeps the two equal).
ATTENTION_BLOCKS = ("none", "se", "cbam", "danet")
# The architectures with a training recipe (trainer.recipes), for --help without importing them.
ARCHITECTURES = ("deepfill_v2", "deepfill_v1", "csa", "pconv")


def _opt(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its command-line help."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Everything a training or fine-tuning run depends on (all JSON-serialisable)."""

    arch: str = _opt("deepfill_v2", "generator architecture to train: "
                     + ", ".join(ARCHITECTURES))
    gen_args: dict = _opt(
        {}, 'generator keyword arguments as JSON, e.g. \'{"cnum": 32}\' (default: the '
        "architecture's own defaults; finetune and --resume keep the model's)",
        parse=json.loads,
    )
    attention: str = _opt(
        "none", "feature-attention block inside the generator: se (squeeze-and-excitation), "
        "cbam (channel then spatial), danet (position + channel, scale initialised at 0) or "
        "none (finetune and --resume keep the model's)",
        choices=ATTENTION_BLOCKS)
    data: list = _opt([], "one or more photo folders, searched recursively (required unless --resume)",
                      nargs="+", parse=str)
    out: str = _opt("runs/train", "run folder: checkpoints, config.json, log.jsonl, samples/")
    init: str = _opt("", "finetune: the .safetensors model to start from (its generator; a "
                     "fresh discriminator)")
    resume: str = _opt("", "continue the run in this folder from its last checkpoint exactly "
                       "where it stopped (options given on the command line override the saved "
                       "ones, e.g. --steps)")
    size: int = _opt(256, "training crop size in pixels (square; a multiple of 8)")
    batch_size: int = _opt(8, "images per step and per process (DDP: per GPU)")
    steps: int = _opt(100_000, "generator steps in total")
    lr_scale: float = _opt(1.0, "multiplies the recipe's learning rates (finetune default 0.1)")
    lr_g: float = _opt(0.0, "generator learning rate; 0 = the recipe's (times --lr-scale)")
    lr_d: float = _opt(0.0, "discriminator learning rate; 0 = the recipe's (times --lr-scale)")
    mask: str = _opt("mixed", "training masks: free_form, box, mixed or folder:<dir>, or several "
                   "separated by commas (each mask from one of them, at random)")
    sketch_prob: float = _opt(0.5, "probability of keeping the sketch (edge) guidance for a "
                              "sample; otherwise it is all zeros, so one model serves both")
    sketch_keep_min: float = _opt(1.0, "training sketches keep each line piece with a probability "
                                  "drawn per sample from [this, 1]: below 1 the generator also "
                                  "learns from partial lines, as users draw them (1 = all the "
                                  "photo's edges in the hole, the reference)")
    val_count: int = _opt(16, "photos held out as the fixed validation set (seeded)")
    workers: int = _opt(2, "data-loading worker processes per training process (0 = none)")
    seed: int = _opt(0, "random seed (data order, masks, initial weights; DDP adds the rank)")
    log_every: int = _opt(10, "write losses to log.jsonl every N steps (0 = only the last step)")
    sample_every: int = _opt(500, "write a sample grid PNG under samples/ every N steps (0 = off)")
    val_every: int = _opt(500, "validate the EMA generator every N steps (0 = only at the end)")
    ckpt_every: int = _opt(1000, "write the checkpoint every N steps (and always at the end; "
                           "0 = only at the end)")
    amp: str = _opt("auto", "mixed precision: auto (inpaint_studio.precision: bf16 on GPUs and "
                    "on CPUs with native bf16 (AMX, AVX512-BF16), fp16 with a gradient scaler "
                    "on GPUs without bf16, off elsewhere), bf16, fp16 or off", choices=AMP_MODES)
    fused_gating: bool = _opt(True, "compile the gated convolutions' ELU*sigmoid gating into one "
                              "kernel (torch.compile; needs a C++ compiler, ~15 s at start; "
                              "falls back to eager PyTorch without one)")
    l1_hole_weight: float = _opt(1.0, "weight of the L1 loss inside the hole, relative to the "
                                 "known pixels' weight of 1 (deepfill_v2; 1 = the reference's "
                                 "plain L1 over the whole image)")
    gan_weight: float = _opt(1.0, "weight of the adversarial loss in the generator loss "
                             "(deepfill_v2; the reference's 1; 0 trains without a GAN term)")
    d_warmup_steps: int = _opt(0, "discriminator-only updates before the generator's first "
                               "update in this process (0 = off): lets a discriminator catch up "
                               "with a generator trained without it, before a GAN phase")
    fm_weight: float = _opt(0.0, "weight of a feature-matching term (deepfill_v2): L1 between the "
                            "discriminator's features of the fill and of the photo, each of its "
                            "six blocks weighing the same (pix2pixHD; 0 = off, the "
                            "reference's; with --gan-weight 0 the discriminator stays as loaded)")
    spectral_weight: float = _opt(0.0, "weight of a local-spectrum term (deepfill_v2): L1 between "
                                  "the log amplitude spectra of the fill's and the photo's 16 px "
                                  "windows over the hole, at full and half resolution "
                                  "(trainer.losses.local_spectrum_loss; 0 = off, the reference's)")
    d_steps: int = _opt(0, "discriminator updates per generator update, each on its own batch "
                        "(0 = the recipe's: 1 for deepfill_v2, as the reference; 5 for "
                        "deepfill_v1)")
    d_translate: int = _opt(0, "shift each discriminator input by a random whole number of "
                            "pixels up to this, in x and y (deepfill_v2; 0 = off, the "
                            "reference's): DiffAugment-style translation, so the generator "
                            "cannot learn a pattern aligned with the discriminator's stride grid")
    d_blur: bool = _opt(False, "low-pass each discriminator conv's input before its stride-2 "
                        "sampling (deepfill_v2's SN-PatchGAN; off = the reference): "
                        "anti-aliasing against a stride-aligned grid in the generator's fills")
    d_scale: int = _opt(1, "show the discriminator the images low-passed and down-sampled this "
                        "many times (deepfill_v2; 1 = full resolution, the reference's): a "
                        "structure-scale discriminator that judges edges and layout and cannot "
                        "see a lattice of a few pixels (trainer.d_augment.structure_view)")
    channels_last: bool = _opt(False, "channels-last memory format (faster convolutions on GPU)")
    compile: bool = _opt(False, "torch.compile the generator and discriminators")
    grad_clip: float = _opt(0.0, "clip each network's gradient norm to this (0 = off)")
    ema_decay: float = _opt(0.999, "decay of the generator's exponential moving average (used "
                            "for validation and export; 0 = EMA equals the generator)")
    vgg_weights: str = _opt("", "VGG-16 ImageNet weights file, needed by recipes with "
                            "perceptual/style/consistency losses")
    freeze_coarse: bool = _opt(False, "freeze the coarse network (parameters named coarse*); "
                               "only the refinement trains")
    train_only: list = _opt([], "train only the generator parameters whose names start with one "
                            "of these prefixes, e.g. refine_net.decoder.4 (default: all; "
                            "freezes the rest, as --freeze-coarse does)", nargs="+", parse=str)
    freeze_enc_bn: bool = _opt(False, "pconv: keep the encoder's batch norm in eval mode with "
                               "frozen statistics and affine parameters (the paper's fine-tuning "
                               "phase, with a learning rate of 5e-5: --lr-g 5e-5)")
    discount_gamma: float = _opt(0.99, "deepfill_v1: base of the spatially discounted L1, whose "
                                 "hole pixels weigh gamma ** (distance to the nearest known "
                                 "pixel); the paper's 0.99, the reference code's 0.9")
    early_stop: int = _opt(0, "stop after this many validations without a better validation "
                           "L1 (0 = off; finetune default 5)")
    max_minutes: float = _opt(0.0, "stop (with a checkpoint) after this many minutes of this process "
                        "(a resumed run gets its own budget; 0 = off)")
    device: str = _opt("auto", "auto (CUDA if present, else CPU), cpu, cuda or cuda:N")
    deterministic: bool = _opt(False, "deterministic algorithms (slower; for exact resume checks)")
    export: str = _opt("", "finetune: where to write the exported model (default: the user "
                       "models folder, where the app finds it, named after --out)")
    title: str = _opt("", "title of the exported model shown in the app (default: from --out)")

    def validate(self) -> None:
        """Raise ``ValueError`` with a message naming the option when a value is out of range."""
        if self.size <= 0 or self.size % 8:
            raise ValueError(f"--size must be a positive multiple of 8, got {self.size}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {self.steps}")
        for name in ("log_every", "val_every", "ckpt_every", "sample_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 0 (0 = off), "
                                 f"got {getattr(self, name)}")
        if not 0.0 <= self.sketch_prob <= 1.0:
            raise ValueError(f"--sketch-prob must be in [0, 1], got {self.sketch_prob}")
        if not 0.0 <= self.sketch_keep_min <= 1.0:
            raise ValueError(f"--sketch-keep-min must be in [0, 1], got {self.sketch_keep_min}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if not isinstance(self.gen_args, dict):
            raise ValueError(f"--gen-args must be a JSON object, got {self.gen_args!r}")
        if "attention" in self.gen_args:
            raise ValueError("give the attention block with --attention, not inside --gen-args")
        if self.attention not in ATTENTION_BLOCKS:
            raise ValueError(f"--attention must be one of {', '.join(ATTENTION_BLOCKS)}, "
                             f"got {self.attention!r}")
        if self.l1_hole_weight <= 0:
            raise ValueError(f"--l1-hole-weight must be positive, got {self.l1_hole_weight}")
        if self.d_warmup_steps < 0:
            raise ValueError(f"--d-warmup-steps must be at least 0, got {self.d_warmup_steps}")
        if self.fm_weight < 0:
            raise ValueError(f"--fm-weight must be at least 0, got {self.fm_weight}")
        if self.spectral_weight < 0:
            raise ValueError(f"--spectral-weight must be at least 0, got {self.spectral_weight}")
        if self.d_steps < 0:
            raise ValueError(f"--d-steps must be at least 0 (0 = the recipe's), got {self.d_steps}")
        if not 0 <= self.d_translate < self.size // 2:
            raise ValueError(f"--d-translate must be in [0, {self.size // 2}) for --size "
                             f"{self.size}, got {self.d_translate}")
        if self.d_scale not in (1, 2, 4):
            raise ValueError(f"--d-scale must be 1, 2 or 4, got {self.d_scale}")
        if self.d_scale > 1 and self.size // self.d_scale < 64:
            raise ValueError(f"--d-scale {self.d_scale} leaves the discriminator "
                             f"{self.size // self.d_scale} px of a --size {self.size} crop; it "
                             f"needs at least 64 (its six stride-2 layers)")
        if self.gan_weight < 0:
            raise ValueError(f"--gan-weight must be at least 0, got {self.gan_weight}")
        if not 0.0 < self.discount_gamma <= 1.0:
            raise ValueError(f"--discount-gamma must be in (0, 1], got {self.discount_gamma}")
        if not self.data:
            raise ValueError("no photos: give one or more folders with --data")

    def generator_args(self) -> dict[str, Any]:
        """Keyword arguments of ``networks.build(self.arch, ...)``: ``gen_args`` plus the
        attention block when one is chosen (absent otherwise, so runs without one store the
        same arguments as before the option existed)."""
        if self.attention == "none":
            return dict(self.gen_args)
        return {**self.gen_args, "attention": self.attention}

    @staticmethod
    def split_generator_args(arch_args: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Inverse of :meth:`generator_args`: a model's ``arch_args`` -> ``(gen_args,
        attention)``."""
        rest = dict(arch_args)
        return rest, str(rest.pop("attention", None) or "none")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the configuration as indented JSON, atomically."""
        text = json.dumps(self.to_json(), indent=2) + "\n"
        atomic_write(path, lambda f: f.write(text.encode()))

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a saved dict; unknown keys (from a newer trainer) are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_json(json.loads(Path(path).read_text()))


# Defaults that differ for `finetune`: a personal photo set is small, so train briefly at a lower
# learning rate, validate often and stop when the validation L1 stops improving.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "lr_scale": 0.1,
    "steps": 2000,
    "val_every": 100,
    "sample_every": 100,
    "ckpt_every": 100,
    "early_stop": 5,
    "out": "runs/finetune",
}


def add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--option`` per field of :class:`TrainConfig` (except ``skip``).

    Defaults are suppressed, so the parsed namespace holds only the options the user gave;
    :func:`config_from_args` fills in the rest. That lets ``--resume`` tell a saved value from
    one given again on the command line.
    """
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        help_text = f.metadata["help"]
        # An empty default means "not given" (its meaning is in the help text itself).
        if default not in ("", [], {}):
            help_text += f" (default: {json.dumps(default)})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if "nargs" in f.metadata:
            kw["nargs"] = f.metadata["nargs"]
            if kw["nargs"] == "+":
                # `--data a --data b` adds b to a (argparse's default would drop a silently).
                kw["action"] = "extend"
        kw["type"] = f.metadata.get("parse", type(default) if default is not None else str)
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]  # usage then lists them: {none,se,cbam,danet}
        else:
            kw["metavar"] = f.name.upper()
        parser.add_argument(flag, **kw)
    if "amp" not in skip:
        parser.add_argument(
            "--precision", dest="amp", default=argparse.SUPPRESS, action=_PrecisionAction,
            choices=tuple(PRECISION_TO_AMP),
            help="the same as --amp, in the words of `inpaint-studio fill --precision`: auto, "
                 "fp32 (= --amp off), bf16 or fp16")


class _PrecisionAction(argparse.Action):
    """Stores ``--precision NAME`` as the ``amp`` field's value."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: D102
        setattr(namespace, self.dest, PRECISION_TO_AMP[values])


def config_from_args(
    args: argparse.Namespace, base: TrainConfig | None = None, defaults: dict[str, Any] | None = None
) -> TrainConfig:
    """The configuration: ``base`` (or the dataclass defaults updated with ``defaults``), then
    every option present in ``args``. Values are checked by :meth:`TrainConfig.validate`."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if base is None:
        cfg = TrainConfig(**{**(defaults or {}), **given})
    else:
        cfg = dataclasses.replace(base, **given)
    cfg.validate()
    return cfg


def resumed_generator_args(resume_state: dict[str, Any], cfg: TrainConfig) -> dict[str, Any]:
    """A resumed generator's keyword arguments: the saved ``resume_state["arch_args"]``, unless
    ``cfg.gen_args`` differs from the saved configuration's (the command line changed it, which
    ``trainer.__main__`` allows only where the weights keep their names and shapes, e.g.
    another up-sampling mode); then ``cfg``'s."""
    if TrainConfig.from_json(resume_state["config"]).gen_args == cfg.gen_args:
        return resume_state["arch_args"]
    return cfg.generator_args()
