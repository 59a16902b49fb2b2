"""Shared fixtures. Real data lives in ../shared/data beside the repository (CI puts it there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt must be told before the first QApplication exists (ARCHITECTURE.md, habit 11).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AUTOPAINT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data. Fails (never skips) when it is missing: real-data tests must run."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(f"real test data not found at {SHARED_DATA} (set AUTOPAINT_SHARED_DATA)")
    return SHARED_DATA
