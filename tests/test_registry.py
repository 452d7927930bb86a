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
