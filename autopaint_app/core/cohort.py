"""Scoring a labelled cohort the way the paper does (section 2.7; Tables 3-5).

Per case (:func:`score_case`): the residual volume swept over the paper's 41 thresholds against the
label (``metrics.sweep``), the case's best threshold (``[Dice]``, ``[Precision]``, ``[Recall]``), and
the clinical PET baselines (``baselines.CLI_BASELINES``: SUV >= 2.5, 41 % of each lesion's SUVmax)
inside the same organ of interest, when the case has a PET in SUV.

Per cohort (:func:`cohort_table`): the one threshold with the best mean Dice (the paper's "fixed"
threshold) and every case's scores at it; mean ± SD of each column; a paired Wilcoxon test of
AutoPaint's per-subject ``[Dice]`` against each baseline's Dice. Everything is JSON-ready.

All arrays are numpy ``(z, y, x)`` on the case's reference grid (CT, else PET).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core import baselines, metrics

AUTOPAINT_FIXED = "autopaint_fixed"
AUTOPAINT_BEST = "autopaint_best"
BASELINE_LABELS = {"suv_2.5": "SUV >= 2.5", "suvmax_41pct_per_lesion": "41 % SUVmax (per lesion)"}


@dataclass
class CaseScores:
    """One labelled case.

    Attributes:
        case_id: the case's name.
        sweep: AutoPaint's scores at every threshold.
        best: AutoPaint at this case's best threshold.
        baselines: ``{name: {"dice", "precision", "recall"}}``; empty without a PET in SUV.
        label_voxels: tumour voxels in the label; ``facts``: anything else worth a CSV column.
        note: why something is missing ("" when nothing is).
    """

    case_id: str
    sweep: metrics.SweepResult
    best: metrics.BestThreshold
    baselines: dict
    label_voxels: int
    facts: dict = field(default_factory=dict)
    note: str = ""


def mask_scores(mask: np.ndarray, truth: np.ndarray) -> dict:
    """Dice, precision and recall of a boolean mask against the boolean truth (same shape)."""
    return {"dice": metrics.dice(mask, truth), "precision": metrics.precision(mask, truth),
            "recall": metrics.recall(mask, truth)}


def score_case(case_id: str, residual: np.ndarray, truth: np.ndarray, ooi: np.ndarray,
               suv: np.ndarray | None, facts: dict | None = None) -> CaseScores:
    """Sweep AutoPaint's residual and run the baselines on one case.

    Args:
        case_id: name of the case.
        residual: residual volume in [0, 1], float ``(z, y, x)``.
        truth: boolean label, same shape.
        ooi: boolean organ of interest, same shape (the baselines' search region).
        suv: PET in SUV on the same grid, or None (baselines skipped, with a note).
        facts: extra per-case values for the CSV (timings, kept slices...).
    """
    truth = np.asarray(truth, dtype=bool)
    if not truth.any():
        raise ValueError(f"case {case_id}: the label is empty")
    sweep = metrics.sweep(residual, truth)
    scores, note = {}, ""
    if suv is None:
        note = "no PET in SUV: baselines skipped"
    else:
        for name, method in baselines.CLI_BASELINES.items():
            scores[name] = mask_scores(method(suv, ooi), truth)
    return CaseScores(case_id, sweep, metrics.best_per_subject(sweep), scores, int(truth.sum()), dict(facts or {}),
                      note)


def uptake_target(truth: np.ndarray, suv: np.ndarray | None, fraction: float) -> np.ndarray:
    """The avid part of a label: in each 3-D connected lesion, the voxels with SUV >= ``fraction`` x its SUVmax.

    For labels that hold a non-avid core (a necrotic sarcoma's GTV), which no uptake-based method can
    find; scoring against the avid part separates "missed the necrosis" from "missed the tumour".

    Args:
        truth: boolean label ``(z, y, x)``.
        suv: SUV on the same grid, or None.
        fraction: in (0, 1].

    Raises:
        ValueError: no SUV, or a fraction outside (0, 1].
    """
    if suv is None:
        raise ValueError("an uptake target needs the PET in SUV")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the uptake fraction must lie in (0, 1], got {fraction:g}")
    labels, count = ndi.label(truth, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return np.zeros(truth.shape, dtype=bool)
    peaks = ndi.maximum(suv, labels, index=np.arange(1, count + 1))
    floor = np.concatenate([[np.inf], fraction * np.asarray(peaks, dtype=float)])
    return (labels > 0) & (suv >= floor[labels])


def _summary(values) -> dict:
    s = metrics.summarize(values)
    return {"mean": _finite(s.mean), "sd": _finite(s.sd), "n": s.n, "undefined": s.n_missing}


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def cohort_table(cases: list[CaseScores]) -> dict:
    """The paper's table for a cohort (JSON-ready).

    Returns:
        ``{"fixed_threshold", "rows": {method: {"threshold", "dice", "precision", "recall"}},
        "per_case": [...], "wilcoxon": {baseline: {...}}, "notes": [...]}`` where each metric is
        ``{"mean", "sd", "n", "undefined"}`` (sample SD; nan precision/recall counted as undefined).
    """
    if not cases:
        raise ValueError("no cases to score")
    fixed = metrics.best_fixed_threshold([c.sweep for c in cases])
    index = int(np.flatnonzero(cases[0].sweep.thresholds == fixed.threshold)[0])
    per_case = []
    for c in cases:
        row = {"case_id": c.case_id, "label_voxels": c.label_voxels,
               AUTOPAINT_FIXED: {"threshold": fixed.threshold, "dice": float(c.sweep.dice[index]),
                                 "precision": float(c.sweep.precision[index]),
                                 "recall": float(c.sweep.recall[index])},
               AUTOPAINT_BEST: {"threshold": c.best.threshold, "dice": c.best.dice, "precision": c.best.precision,
                                "recall": c.best.recall},
               **c.baselines, "facts": c.facts, "note": c.note}
        per_case.append(row)
    rows = {}
    for method in [AUTOPAINT_FIXED, AUTOPAINT_BEST, *baselines.CLI_BASELINES]:
        having = [row[method] for row in per_case if method in row]
        if not having:
            continue
        rows[method] = {"n_cases": len(having),
                        "threshold": fixed.threshold if method == AUTOPAINT_FIXED else None,
                        **{m: _summary([h[m] for h in having]) for m in ("dice", "precision", "recall")}}
    return {"fixed_threshold": fixed.threshold, "rows": rows, "per_case": per_case,
            "wilcoxon": _wilcoxon_rows(per_case), "notes": sorted({c.note for c in cases if c.note})}


def _wilcoxon_rows(per_case: list[dict]) -> dict:
    """AutoPaint's per-subject [Dice] against each baseline's Dice, on the cases that have both."""
    tests = {}
    for name in baselines.CLI_BASELINES:
        paired = [(row[AUTOPAINT_BEST]["dice"], row[name]["dice"]) for row in per_case if name in row]
        if len(paired) < 2:
            continue
        a, b = zip(*paired)
        result = metrics.wilcoxon(a, b)
        tests[name] = {"statistic": result.statistic, "pvalue": round(result.pvalue, 6), "n": result.n,
                       "note": result.note}
    return tests


def dice_curves(cases: list[CaseScores]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(thresholds, {case_id: Dice per threshold})`` for the Dice-vs-threshold plot and CSV."""
    return cases[0].sweep.thresholds, {c.case_id: c.sweep.dice for c in cases}


# ------------------------------------------------------------------------------ storing one case

SWEEP_FIELDS = ("thresholds", "tp", "fp", "fn", "dice", "precision", "recall")


def case_scores_to_dict(scores: CaseScores) -> dict:
    """JSON-ready form of :class:`CaseScores` (nan stays nan: ``json`` writes it as ``NaN``)."""
    return {"case_id": scores.case_id,
            "sweep": {name: getattr(scores.sweep, name).tolist() for name in SWEEP_FIELDS},
            "best": {"threshold": scores.best.threshold, "dice": scores.best.dice,
                     "precision": scores.best.precision, "recall": scores.best.recall},
            "baselines": scores.baselines, "label_voxels": scores.label_voxels, "facts": scores.facts,
            "note": scores.note}


def case_scores_from_dict(data: dict) -> CaseScores:
    """Inverse of :func:`case_scores_to_dict`.

    Raises:
        ValueError: a field is missing or the sweep's arrays differ in length.
    """
    try:
        sweep = {name: np.asarray(data["sweep"][name], dtype=float) for name in SWEEP_FIELDS}
        if len({len(v) for v in sweep.values()}) != 1:
            raise ValueError("the sweep's arrays differ in length")
        for name in ("tp", "fp", "fn"):
            sweep[name] = sweep[name].astype(np.int64)
        best = metrics.BestThreshold(**{k: float(v) for k, v in data["best"].items()})
        return CaseScores(str(data["case_id"]), metrics.SweepResult(**sweep), best, dict(data["baselines"]),
                          int(data["label_voxels"]), dict(data.get("facts", {})), str(data.get("note", "")))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a stored case score ({exc})") from None
