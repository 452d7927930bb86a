"""Training data in an order that can resume mid-epoch: the photos split into training and
fixed validation sets, a seeded sampler that can skip into an epoch, and endless batches on
the device that record where they are (``epoch``, ``batches_done``) for checkpoints.

Batches are dicts of float tensors (``trainer.recipes.base.Batch``): image ``(B, 3, H, W)`` in
[-1, 1], mask and sketch ``(B, 1, H, W)`` in {0, 1}.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from .config import TrainConfig
from .data import InpaintDataset, list_images, validation_split

if TYPE_CHECKING:  # loop imports this module; the annotation only
    from .loop import Distributed




@dataclass
class TrainingData:
    """The training photos and the fixed, held-out validation photos."""

    train: InpaintDataset
    val: InpaintDataset
    photo_count: int


def training_data(cfg: TrainConfig) -> TrainingData:
    paths = list_images(cfg.data)
    if len(paths) < 2:
        raise ValueError(f"{len(paths)} photo found in {', '.join(map(str, cfg.data))}: "
                         "need at least 2 (one is held out for validation)")
    # A tiny personal set still keeps most photos for training.
    n_val = max(1, min(cfg.val_count, len(paths) // 5))
    train_paths, val_paths = validation_split(paths, n_val, cfg.seed)
    common = dict(size=cfg.size, mask=cfg.mask, sketch_prob=cfg.sketch_prob, seed=cfg.seed)
    return TrainingData(InpaintDataset(train_paths, train=True, sketch_keep_min=cfg.sketch_keep_min,
                                       **common),
                        InpaintDataset(val_paths, train=False, **common), len(paths))


class _ResumableSampler(Sampler[int]):
    """``DistributedSampler`` (shuffled per epoch, sharded per rank, seeded) that can start
    ``skip`` samples into an epoch, without loading the skipped images."""

    def __init__(self, dataset_len: int, env: Distributed, seed: int):
        self.inner = DistributedSampler(range(dataset_len), num_replicas=env.world_size,
                                        rank=env.rank, shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return len(self.inner) - self.skip


def _seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch and random per worker; numpy's global generator needs it too.
    np.random.seed(torch.initial_seed() % 2**32)


class Batches:
    """Endless batches on the device; records ``epoch`` and ``batches_done`` for resume."""

    def __init__(self, data: TrainingData, cfg: TrainConfig, env: Distributed,
                 device: torch.device, epoch: int = 0, batches_done: int = 0):
        self.sampler = _ResumableSampler(len(data.train), env, cfg.seed)
        self.loader = DataLoader(
            data.train, batch_size=cfg.batch_size, sampler=self.sampler, drop_last=True,
            num_workers=cfg.workers, pin_memory=device.type == "cuda",
            worker_init_fn=_seed_worker, persistent_workers=False,
            generator=torch.Generator(),
        )
        if len(self.sampler.inner) < cfg.batch_size:
            raise ValueError(
                f"{len(data.train)} training photos are too few for --batch-size {cfg.batch_size}"
                f" on {env.world_size} process(es); lower --batch-size or add photos"
            )
        self.dataset = data.train
        self.cfg, self.env, self.device = cfg, env, device
        self.epoch, self.batches_done = epoch, batches_done
        self.skipped_files = 0  # unreadable photos met (a worker may count a file again)
        self._it: Iterator | None = None

    def _start_epoch(self) -> None:
        self.sampler.set_epoch(self.epoch, skip=self.batches_done * self.cfg.batch_size)
        # Crops, flips, masks and sketches are seeded by (seed, epoch, index) in the dataset;
        # workers are started by iter() below and copy the epoch.
        self.dataset.set_epoch(self.epoch)
        # Workers' base seed comes from this generator: fixed per (seed, rank, epoch).
        self.loader.generator.manual_seed(
            (self.cfg.seed * 1_000_003 + self.env.rank) * 10_007 + self.epoch)
        self._it = iter(self.loader)

    def next(self) -> dict[str, torch.Tensor]:
        if self._it is None:
            self._start_epoch()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.batches_done = self.epoch + 1, 0
            self._start_epoch()
            batch = next(self._it)
        self.batches_done += 1
        self.skipped_files += int(batch.pop("skipped_files").sum())
        fmt = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        return {k: v.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
                for k, v in batch.items() if torch.is_tensor(v)}
