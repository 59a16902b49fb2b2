"""Phantom cases written once per session through the CLI and shared by the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import SMALL_PHANTOM, cli
from tests.cli.model_fixtures import tiny_models  # noqa: F401 (fixture shared by the CLI tests)


@pytest.fixture(scope="session")
def lung_phantom(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cli") / "lung_case"
    run = cli("phantom", "--site", "lung", "--seed", 3, *SMALL_PHANTOM, "--out", out)
    assert run.code == 0 and run.err == ""
    return out, run.json


@pytest.fixture(scope="session")
def hn_phantom(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "hn_case"
    assert cli("phantom", "--site", "hn", "--seed", 4, *SMALL_PHANTOM, "--out", out).code == 0
    return out

