"""Which generator parameters a run trains: ``--freeze-coarse`` and ``--train-only``.

Both freeze parameters by name (``requires_grad_(False)``) before the optimiser is built, so
the optimiser never sees them; the loop's EMA copies them unchanged.
"""

from __future__ import annotations

from typing import Callable

from torch import nn


def _freeze_where(G: nn.Module, frozen: Callable[[str], bool]) -> int:
    """Freeze every parameter of ``G`` whose name ``frozen`` accepts; returns how many values."""
    count = 0
    for name, p in G.named_parameters():
        if frozen(name):
            p.requires_grad_(False)
            count += p.numel()
    return count


def freeze_coarse(G: nn.Module) -> int:
    """Freeze the coarse network (parameters named ``coarse*``); returns how many values.
    Raises ValueError when ``G`` has none."""
    frozen = _freeze_where(G, lambda name: name.startswith("coarse"))
    if not frozen:
        raise ValueError(f"--freeze-coarse: generator {G.arch!r} has no parameters named coarse*")
    return frozen


def train_only(G: nn.Module, prefixes: list[str]) -> int:
    """Freeze every parameter whose name starts with none of ``prefixes``; returns how many
    values. A prefix that names no parameter is a ValueError (a typo would otherwise freeze the
    whole network)."""
    names = [name for name, _ in G.named_parameters()]
    unknown = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unknown:
        raise ValueError(f"--train-only: no generator parameter starts with {', '.join(unknown)} "
                         f"(names look like {names[0]})")
    return _freeze_where(G, lambda name: not name.startswith(tuple(prefixes)))
