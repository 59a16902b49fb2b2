"""Per-case results of `autopaint-cli evaluate`, kept on disk so a long cohort run can resume and be sharded.

Each finished case is written at once (atomically) to ``OUT/cases/<case_id>.json`` with the settings
that produced it: site, modality, organ-of-interest region, mode, pipeline parameters and the model
(file name and SHA-256 of its bytes, or the fake predictor's class in tests), the scoring used
(``target_uptake``), and its residual volume beside it (``<case_id>.residual.nii.gz``, the CT's
geometry). A later run with ``--resume`` reuses a stored case only when those settings are
identical; otherwise it stops and names the file and what differs, so results of different settings
are never mixed in one table. A different scoring alone needs no inference: the case is re-scored
from its stored residual.

``--shard K/N`` makes a run compute only cases ``K, K + N, K + 2N, ...`` (1-based, in the cohort's
order); shards may run at the same time into the same ``--out``. The run that finds every case of
the cohort stored writes the table; the others say how many cases are still missing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from autopaint_app.core import cohort
from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume, file_sha256, read_volume, write_json, write_volume

CASES_FOLDER = "cases"
STORE_SCHEMA = 1


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``; None stays None.

    Raises:
        InputError: anything else (names ``--shard``).
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise InputError("--shard", f"expected K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def in_shard(index: int, shard: tuple[int, int] | None) -> bool:
    """Whether the case at 0-based ``index`` of the cohort belongs to ``shard``."""
    return shard is None or index % shard[1] == shard[0] - 1


def model_fingerprint(predictor) -> dict:
    """The model part of the settings: file name and SHA-256, or the predictor's class for fakes."""
    path = getattr(predictor, "path", None)
    if path is None:
        return {"name": type(predictor).__name__}
    return {"name": Path(path).name, "sha256": file_sha256(path)}


def check_unique_ids(found) -> None:
    """Two cases with one id would share a result file (and a table row): refuse before any work."""
    seen: dict[str, object] = {}
    for files in found:
        if files.case_id in seen:
            raise InputError(files.ct or files.pet, f"two cases are named {files.case_id!r} (the other: "
                                                    f"{seen[files.case_id]}); case ids must be unique in a cohort")
        seen[files.case_id] = files.ct or files.pet


@dataclass(frozen=True)
class CaseStore:
    """The folder of per-case results of one evaluate output folder, for one set of settings."""

    folder: Path
    settings: dict

    def path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.json"

    def residual_path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.residual.nii.gz"

    def save(self, scores: cohort.CaseScores, files, scoring: dict, residual: Volume | None = None) -> Path:
        """Write one finished case (atomic; replaces an older result of the same case).

        The residual goes first, so a result file never points to a residual that is not there.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        if residual is not None:
            write_volume(residual, self.residual_path(scores.case_id), overwrite=True)
        record = {"schema": STORE_SCHEMA, "settings": self.settings, "scoring": scoring,
                  "inputs": {"ct": _text(files.ct), "pet": _text(files.pet), "label": _text(files.label)},
                  "scores": cohort.case_scores_to_dict(scores)}
        return write_json(record, self.path(scores.case_id), overwrite=True)

    def residual(self, case_id: str) -> Volume:
        """The stored residual volume of ``case_id`` (InputError naming the file when it is missing)."""
        return read_volume(self.residual_path(case_id))

    def load(self, case_id: str) -> tuple[cohort.CaseScores, dict | None] | None:
        """The stored result of ``case_id`` and how it was scored (``"scoring"``); None when there is none.

        Raises:
            InputError: the file is unreadable, not a stored result, or was computed with other
                settings (names the file and what differs).
        """
        path = self.path(case_id)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("schema") != STORE_SCHEMA:
                raise ValueError(f"unknown schema {record.get('schema')!r}")
            scores = cohort.case_scores_from_dict(record["scores"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(path, f"not a readable stored case result ({exc}); delete it or use --overwrite") from None
        differences = _differences(record.get("settings", {}), self.settings)
        if differences:
            raise InputError(path, "was computed with other settings (" + "; ".join(differences[:4]) +
                             "); use another --out, or --overwrite to recompute")
        if scores.case_id != case_id:
            raise InputError(path, f"holds case {scores.case_id!r}, not {case_id!r}")
        return scores, record.get("scoring")


def _text(path) -> str | None:
    return None if path is None else str(path)


def _differences(stored, wanted, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like dicts, with both values."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(stored) | set(wanted), key=str):
            out += _differences(stored.get(key), wanted.get(key), f"{prefix}{key}.")
        return out
    return [] if stored == wanted else [f"{prefix.rstrip('.')}: stored {stored!r}, now {wanted!r}"]
