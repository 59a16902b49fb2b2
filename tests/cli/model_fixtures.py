"""Tiny ONNX models and fake predictors for the segment / evaluate CLI tests (import the fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.autopaint_fakes import CountingPredictor, ring_mean_fill
from tests.core.tiny_onnx import build_model, write_card


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A folder with ``lung_petct_test.onnx`` (2 channels) and ``lung_pet_test.onnx`` (1), valid cards."""
    folder = tmp_path_factory.mktemp("models")
    build_model(folder / "lung_petct_test.onnx", channels=2)
    write_card(folder / "lung_petct_test.json")
    build_model(folder / "lung_pet_test.onnx", channels=1)
    write_card(folder / "lung_pet_test.json", channels=["pet"])
    return folder


class KeyboardInterruptAfter(CountingPredictor):
    """A ring-mean predictor that raises KeyboardInterrupt (Ctrl-C) on its ``n``-th call."""

    def __init__(self, n: int):
        super().__init__(ring_mean_fill)
        self.n = n

    def __call__(self, image, mask):
        if self.calls + 1 >= self.n:
            raise KeyboardInterrupt
        return super().__call__(image, mask)


def use_fake_predictor(monkeypatch, predictor) -> None:
    """Make `segment` / `evaluate` use ``predictor`` instead of loading an ONNX model."""
    from autopaint_app import evaluate_command, segment_commands

    def load(*_args, **_kwargs):
        return predictor

    monkeypatch.setattr(segment_commands, "load_predictor", load)
    monkeypatch.setattr(evaluate_command, "load_predictor", load)
