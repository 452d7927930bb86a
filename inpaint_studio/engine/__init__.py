"""The fill engine API: the one entry point the app, the CLI and the benchmarks call.

Typical use::

    from inpaint_studio.engine import FillRequest, get_engine
    for stage in get_engine("patchmatch").fill(FillRequest(image, mask)):
        show(stage.image)
"""

from .base import Availability, AttentionSource, CoreStage, Engine, EngineUnavailable
from .registry import (
    EngineInfo,
    all_engines,
    clear_cache,
    default_engine_among,
    default_engine_name,
    get_engine,
    list_engines,
    register,
)
from .request import (
    STRATEGIES,
    CancelToken,
    FillCancelled,
    FillOptions,
    FillRequest,
    FillStage,
    InvalidRequest,
)

__all__ = [
    "Availability", "AttentionSource", "CoreStage", "Engine", "EngineUnavailable", "EngineInfo",
    "all_engines", "clear_cache", "default_engine_among",
    "default_engine_name", "get_engine", "list_engines", "register",
    "STRATEGIES", "CancelToken", "FillCancelled", "FillOptions", "FillRequest", "FillStage",
    "InvalidRequest",
]
