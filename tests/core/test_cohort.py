"""core.cohort: the paper's table from hand-made residuals, where every number can be worked out."""

from __future__ import annotations

import numpy as np
import pytest

from autopaint_app.core import cohort
from autopaint_app.core.model_store import MODELS_ENV, default_model_path, models_dir
from autopaint_app.core.errors import InputError


def _case(residual_values: dict[tuple[int, int], float], truth_pixels, suv=None, case_id="c"):
    """A (1, 4, 4) case; ``residual_values`` {(y, x): value}; truth at ``truth_pixels``."""
    residual = np.zeros((1, 4, 4))
    for (y, x), value in residual_values.items():
        residual[0, y, x] = value
    truth = np.zeros((1, 4, 4), dtype=bool)
    for y, x in truth_pixels:
        truth[0, y, x] = True
    ooi = np.ones((1, 4, 4), dtype=bool)
    return cohort.score_case(case_id, residual, truth, ooi, suv)


def test_per_case_best_threshold_and_cohort_fixed_threshold():
    # Case a: truth (0,0),(0,1); residual 0.5 on both, 0.15 on a false pixel -> best t in [0.15, 0.5).
    a = _case({(0, 0): 0.5, (0, 1): 0.5, (3, 3): 0.15}, [(0, 0), (0, 1)], case_id="a")
    # Case b: truth (1,1); residual 0.12 on it, 0.3 on a false pixel -> perfect only for... never:
    # t < 0.12 gives tp=1, fp=1 (Dice 2/3); t >= 0.12 gives nothing (Dice 0).
    b = _case({(1, 1): 0.12, (2, 2): 0.3}, [(1, 1)], case_id="b")
    assert a.best.threshold == pytest.approx(0.16) and a.best.dice == 1.0
    assert b.best.threshold == 0.0 and b.best.dice == pytest.approx(2 / 3)
    table = cohort.cohort_table([a, b])
    # mean Dice: t in [0.12, 0.15): a 0.8, b 0 -> 0.4; t in [0.16, 0.5): a 1, b 0 -> 0.5; t < 0.12: a 0.8, b 2/3.
    assert table["fixed_threshold"] == 0.0
    fixed = table["rows"][cohort.AUTOPAINT_FIXED]
    assert fixed["dice"]["mean"] == pytest.approx(round((0.8 + 2 / 3) / 2, 4))
    best = table["rows"][cohort.AUTOPAINT_BEST]
    assert best["dice"]["mean"] == pytest.approx(round((1 + 2 / 3) / 2, 4))
    assert best["dice"]["sd"] == pytest.approx(round(float(np.std([1, 2 / 3], ddof=1)), 4))
    assert table["notes"] == ["no PET in SUV: baselines skipped"] and table["wilcoxon"] == {}
    assert set(table["rows"]) == {cohort.AUTOPAINT_FIXED, cohort.AUTOPAINT_BEST}


def test_baselines_and_wilcoxon_on_the_same_cases():
    suv = np.full((1, 4, 4), 1.0)
    suv[0, 0, 0] = 10.0                      # SUV >= 2.5: one pixel; 41 % of 10 = 4.1 keeps it
    cases = [_case({(0, 0): 0.5 + k / 100, (0, 1): 0.5}, [(0, 0), (0, 1)], suv, f"c{k}") for k in range(3)]
    for c in cases:
        assert c.baselines["suv_2.5"] == {"dice": pytest.approx(2 / 3), "precision": 1.0, "recall": 0.5}
    table = cohort.cohort_table(cases)
    assert table["rows"]["suv_2.5"]["dice"]["mean"] == pytest.approx(round(2 / 3, 4))
    test = table["wilcoxon"]["suvmax_41pct_per_lesion"]
    assert test["n"] == 3 and test["pvalue"] == pytest.approx(0.25)   # 3 positive differences, exact
    thresholds, curves = cohort.dice_curves(cases)
    assert len(thresholds) == 41 and list(curves) == ["c0", "c1", "c2"]


def test_an_empty_label_is_refused():
    with pytest.raises(ValueError, match="label is empty"):
        _case({}, [])


def test_default_model_lookup(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert models_dir() == tmp_path
    with pytest.raises(InputError) as error:
        default_model_path("hn", "pet")
    assert str(error.value) == (f"{tmp_path}: no model for hn/pet in this folder (expected hn_pet_gconv_lap.onnx); "
                                f"pass --model FILE or train one")
    for name in ("hn_pet_pconv.onnx", "hn_pet_gconv.onnx", "hn_petct_gconv_lap.onnx"):
        (tmp_path / name).write_bytes(b"")
    assert default_model_path("hn", "pet").name == "hn_pet_gconv.onnx"      # first other by name
    (tmp_path / "hn_pet_gconv_lap.onnx").write_bytes(b"")
    assert default_model_path("hn", "pet").name == "hn_pet_gconv_lap.onnx"  # the paper's network first


def test_case_scores_survive_a_json_round_trip_nan_included():
    import json

    suv = np.zeros((1, 4, 4))
    suv[0, 0, :2] = 5.0
    a = _case({(0, 0): 0.5, (0, 1): 0.5, (3, 3): 0.15}, [(0, 0), (0, 1)], suv=suv, case_id="a")
    a.facts.update({"seconds": 1.5, "circles": 7})
    assert np.isnan(a.sweep.precision[-1])  # nothing above the top threshold: precision undefined
    back = cohort.case_scores_from_dict(json.loads(json.dumps(cohort.case_scores_to_dict(a))))
    for name in cohort.SWEEP_FIELDS:
        np.testing.assert_array_equal(getattr(back.sweep, name), getattr(a.sweep, name))
    assert back.sweep.tp.dtype.kind == "i" and back.best == a.best
    assert (back.case_id, back.baselines, back.label_voxels, back.facts, back.note) == \
        (a.case_id, a.baselines, a.label_voxels, a.facts, a.note)
    b = _case({(1, 1): 0.12, (2, 2): 0.3}, [(1, 1)], suv=suv, case_id="b")
    assert cohort.cohort_table([back, b]) == cohort.cohort_table([a, b])
    broken = cohort.case_scores_to_dict(a)
    del broken["sweep"]["dice"]
    with pytest.raises(ValueError, match="not a stored case score"):
        cohort.case_scores_from_dict(broken)
    broken = cohort.case_scores_to_dict(a)
    broken["sweep"]["dice"] = broken["sweep"]["dice"][:-1]
    with pytest.raises(ValueError, match="differ in length"):
        cohort.case_scores_from_dict(broken)


def test_uptake_target_keeps_each_lesions_avid_part():
    truth = np.zeros((1, 6, 8), dtype=bool)
    suv = np.zeros((1, 6, 8))
    truth[0, 1:4, 1:4] = True  # lesion 1: hot rim, cold core, SUVmax 10
    suv[0, 1:4, 1:4] = [[6, 10, 6], [5, 1, 5], [4, 3, 4.1]]
    truth[0, 1:3, 6:8] = True  # lesion 2 (not touching): SUVmax 2, all above 41 % of it
    suv[0, 1:3, 6:8] = [[2, 1], [0.9, 0.83]]
    target = cohort.uptake_target(truth, suv, 0.41)
    expected = truth & (suv >= 4.1)
    expected[0, 1:3, 6:8] = suv[0, 1:3, 6:8] >= 0.82  # lesion 2's own peak sets its floor
    np.testing.assert_array_equal(target, expected)
    assert not target[0, 2, 2] and target[0, 3, 3]  # the necrotic centre is out; SUV exactly at the floor is in
    with pytest.raises(ValueError, match="needs the PET in SUV"):
        cohort.uptake_target(truth, None, 0.41)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\], got 1.5"):
        cohort.uptake_target(truth, suv, 1.5)
