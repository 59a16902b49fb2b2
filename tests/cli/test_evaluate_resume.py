"""`autopaint-cli evaluate --resume / --shard`: each case stored as it finishes, a cohort split over processes."""

from __future__ import annotations

import json

import pytest

from tests.cli.helpers import assert_error, cli
from tests.cli.model_fixtures import KeyboardInterruptAfter, use_fake_predictor
from tests.cli.test_baseline_evaluate import cohort  # noqa: F401 (module fixture: two lung phantoms)
from tests.core.autopaint_fakes import CountingPredictor, ring_mean_fill

TABLE_FILES = ["cases.csv", "dice_vs_threshold.csv", "dice_vs_threshold.png", "evaluation.json", "summary.csv"]


def _evaluate(cases, out, *extra):
    return cli("evaluate", "--cases", cases, "--site", "lung", "--modality", "petct", "--out", out, *extra)


def _scores(out) -> dict:
    """The table without wall times (which differ between runs)."""
    table = json.loads((out / "evaluation.json").read_text())
    for row in table["per_case"]:
        row["facts"].pop("seconds")
    return {key: table[key] for key in ("fixed_threshold", "rows", "per_case", "wilcoxon", "notes")}


@pytest.fixture(scope="module")
def single_run(cohort, tmp_path_factory):  # noqa: F811
    mp = pytest.MonkeyPatch()
    use_fake_predictor(mp, CountingPredictor(ring_mean_fill))
    out = tmp_path_factory.mktemp("single") / "eval"
    run = _evaluate(cohort, out)
    mp.undo()
    assert run.code == 0, run.err
    return _scores(out)


def test_two_shards_into_one_folder_give_the_single_runs_table(cohort, single_run, tmp_path, monkeypatch):  # noqa: F811
    predictor = CountingPredictor(ring_mean_fill)
    use_fake_predictor(monkeypatch, predictor)
    out = tmp_path / "eval"
    first = _evaluate(cohort, out, "--shard", "1/2")
    assert first.code == 0, first.err
    assert "shard 1/2 done: 1 of 2 cases stored" in first.out and "missing: case_b" in first.out
    assert sorted(p.name for p in out.iterdir()) == ["cases"]  # no table yet
    assert sorted(p.name for p in (out / "cases").iterdir()) == ["case_a.json", "case_a.residual.nii.gz"]
    calls_first = predictor.calls
    second = _evaluate(cohort, out, "--shard", "2/2")
    assert second.code == 0, second.err
    assert "case 2/2 case_b: AutoPaint [Dice]" in second.err and "case_a" not in second.err  # case_a not recomputed
    assert predictor.calls > calls_first
    assert sorted(p.name for p in out.iterdir()) == ["cases", *TABLE_FILES]
    assert _scores(out) == single_run


def test_an_interrupted_run_resumes_where_it_stopped(cohort, single_run, tmp_path, monkeypatch):  # noqa: F811
    out = tmp_path / "eval"
    calls = {}
    for shard in ("1/2", "2/2"):  # how many predictor calls each case takes alone
        probe = KeyboardInterruptAfter(10**9)  # never interrupts; same class, so the same stored settings
        use_fake_predictor(monkeypatch, probe)
        assert _evaluate(cohort, tmp_path / shard.replace("/", "of"), "--shard", shard).code == 0
        calls[shard] = probe.calls
    use_fake_predictor(monkeypatch, KeyboardInterruptAfter(calls["1/2"] + 3))  # Ctrl-C early in the second case
    stopped = _evaluate(cohort, out)
    assert stopped.code == 130
    assert sorted(p.name for p in out.iterdir()) == ["cases"]  # the table is all or nothing
    assert sorted(p.name for p in (out / "cases").iterdir()) == ["case_a.json", "case_a.residual.nii.gz"]  # kept
    assert_error(_evaluate(cohort, out), out / "cases" / "case_a.json", "already exists")  # no silent recompute
    resumed_predictor = KeyboardInterruptAfter(10**9)
    use_fake_predictor(monkeypatch, resumed_predictor)
    resumed = _evaluate(cohort, out, "--resume")
    assert resumed.code == 0, resumed.err
    assert "case 1/2 case_a: stored result reused" in resumed.err and "case 2/2 case_b: AutoPaint" in resumed.err
    assert resumed_predictor.calls == calls["2/2"]  # only case_b was computed
    assert _scores(out) == single_run
    again = KeyboardInterruptAfter(10**9)
    use_fake_predictor(monkeypatch, again)
    assert _evaluate(cohort, out, "--resume").code == 0 and again.calls == 0  # everything stored: table only


def test_stored_results_of_other_settings_are_refused_by_name(cohort, tmp_path, monkeypatch):  # noqa: F811
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    out = tmp_path / "eval"
    assert _evaluate(cohort, out, "--shard", "1/2").code == 0
    line = assert_error(_evaluate(cohort, out, "--resume", "--top-k", "2"), out / "cases" / "case_a.json",
                        "was computed with other settings", "params.top_k: stored 3, now 2", "--overwrite")
    assert "Traceback" not in line
    (out / "cases" / "case_a.json").write_text("{ not json")
    assert_error(_evaluate(cohort, out, "--resume"), out / "cases" / "case_a.json", "not a readable stored case result")
    assert _evaluate(cohort, out, "--overwrite").code == 0  # recomputes and replaces it
    assert json.loads((out / "cases" / "case_a.json").read_text())["scores"]["case_id"] == "case_a"


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_a_one_line_error(cohort, tmp_path, monkeypatch, shard):  # noqa: F811
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    assert_error(_evaluate(cohort, tmp_path / "eval", "--shard", shard), "--shard", "expected K/N with 1 <= K <= N")
    assert not (tmp_path / "eval").exists()


def test_two_cases_with_one_id_are_refused_before_any_work(cohort, tmp_path, monkeypatch):  # noqa: F811
    predictor = CountingPredictor(ring_mean_fill)
    use_fake_predictor(monkeypatch, predictor)
    twin = tmp_path / "other" / "case_a"
    twin.mkdir(parents=True)
    for name in ("ct.nii.gz", "pet.nii.gz", "label.nii.gz"):
        (twin / name).write_bytes((cohort / "case_a" / name).read_bytes())
    run = cli("evaluate", "--cases", cohort, tmp_path / "other", "--site", "lung", "--modality", "petct",
              "--out", tmp_path / "eval")
    assert_error(run, twin / "ct.nii.gz",
                 "two cases are named 'case_a'", "must be unique")
    assert predictor.calls == 0


def test_another_target_is_scored_from_the_stored_residuals_without_inference(cohort, tmp_path, monkeypatch):  # noqa: F811
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    out = tmp_path / "eval"
    assert _evaluate(cohort, out).code == 0
    whole = json.loads((out / "evaluation.json").read_text())
    predictor = CountingPredictor(ring_mean_fill)
    use_fake_predictor(monkeypatch, predictor)
    run = _evaluate(cohort, out, "--resume", "--target-uptake", "0.41")
    assert run.code == 0, run.err
    assert predictor.calls == 0 and run.err.count("stored result re-scored from its stored residual") == 2
    assert "target: label voxels with SUV >= 0.41 x their lesion's SUVmax" in run.out
    avid = json.loads((out / "evaluation.json").read_text())
    assert avid["target_uptake"] == 0.41 and whole["target_uptake"] is None
    for before, after in zip(whole["per_case"], avid["per_case"]):
        assert 0 < after["label_voxels"] < before["label_voxels"] and after["facts"]["target_voxels"] == after["label_voxels"]
    # the same as scoring the stored residual against the avid part by hand
    from autopaint_app.core import cohort as core_cohort, metrics
    from autopaint_app.core.case import find_cases, load_case
    from autopaint_app.core.io import read_volume
    from autopaint_app.core.preprocess import resample_pet_to_ct

    case = load_case(find_cases(cohort / "case_b")[0], pet_suv=True)
    target = core_cohort.uptake_target(case.label.array > 0, resample_pet_to_ct(case.pet, case.ct).array, 0.41)
    residual = read_volume(out / "cases" / "case_b.residual.nii.gz").array
    assert avid["per_case"][1]["autopaint_best"]["dice"] == pytest.approx(
        metrics.best_per_subject(metrics.sweep(residual, target)).dice, abs=1e-12)
    stored = json.loads((out / "cases" / "case_a.json").read_text())
    assert stored["scoring"] == {"target_uptake": 0.41}
    back = _evaluate(cohort, out, "--resume")  # and back to the whole label: same table as the first run
    assert back.code == 0 and predictor.calls == 0
    again = json.loads((out / "evaluation.json").read_text())
    assert [c["autopaint_best"] for c in again["per_case"]] == [c["autopaint_best"] for c in whole["per_case"]]


def test_an_uptake_target_without_pet_is_a_one_line_error(cohort, tmp_path, monkeypatch):  # noqa: F811
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    ct_only = tmp_path / "ct_only" / "case"
    ct_only.mkdir(parents=True)
    for name in ("ct.nii.gz", "label.nii.gz"):
        (ct_only / name).write_bytes((cohort / "case_b" / name).read_bytes())
    run = cli("evaluate", "--cases", ct_only.parent, "--site", "lung", "--modality", "ct", "--target-uptake", "0.41",
              "--out", tmp_path / "e", "--no-progress")
    assert run.code == 2 and "--target-uptake: an uptake target needs the PET in SUV" in run.err
    assert "Traceback" not in run.err
