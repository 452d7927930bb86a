"""The fill worker on its own (called directly, no thread): what a failing engine reports."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from inpaint_studio.engine import EngineUnavailable, FillRequest
from inpaint_studio.ui.worker import FillJob, FillWorker


def _job() -> FillJob:
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 255
    return FillJob(FillRequest(np.zeros((8, 8, 3), np.uint8), mask, request_id=7), "x")


def _failure(getter, capsys) -> tuple[list, str]:
    worker = FillWorker(getter)
    failed, finished = [], []
    worker.failed.connect(lambda rid, message: failed.append((rid, message)))
    worker.finished.connect(finished.append)
    worker.run(_job())
    assert finished == [7]  # always, whatever the outcome
    return failed, capsys.readouterr().err


@pytest.mark.parametrize("error", [
    EngineUnavailable("DeepFill v2 is not available: model.safetensors is corrupt"),
    ValueError("mask size 4x4 differs from the image size 8x8"),
])
def test_expected_failures_show_their_own_words_without_a_traceback(qapp, capsys, error):
    def getter(name, device):
        raise error

    failed, err = _failure(getter, capsys)
    assert failed == [(7, str(error))]
    assert "Traceback" not in err


def test_a_bug_in_an_engine_is_named_and_its_traceback_printed(qapp, capsys):
    def getter(name, device):
        raise KeyError("weights")

    failed, err = _failure(getter, capsys)
    assert failed == [(7, "KeyError: 'weights'")]
    assert "Traceback" in err


def test_warm_up_compiles_patchmatch_in_the_worker_thread_before_a_fill(qtbot):
    from PySide6.QtCore import QThread

    from inpaint_studio.ui.worker import FillService

    service = FillService()
    threads = []
    service.worker.warmed.connect(lambda s: threads.append(QThread.currentThread()),
                                  Qt.ConnectionType.DirectConnection)
    try:
        with qtbot.waitSignal(service.worker.warmed, timeout=120000) as done:
            service.warm_up()
        assert done.args[0] >= 0  # it ran without an error
        assert threads == [service.thread]  # in the worker, not the UI thread
    finally:
        service.shutdown()
