"""`autopaint-cli evaluate`: the pipeline on labelled cases, scored as in the paper's Tables 3-5.

Writes into ``--out``: ``cases.csv`` (one row per case), ``summary.csv`` (one row per method),
``dice_vs_threshold.csv`` and ``.png`` (the sweep), ``evaluation.json`` (everything, incl. Wilcoxon);
prints the table. These files are written at the end, all or nothing. Each finished case is stored
at once in ``cases/<case_id>.json`` (:mod:`autopaint_app.evaluate_store`), so an interrupted run
resumes with ``--resume`` and a cohort can be split over processes with ``--shard K/N``; one line
per finished case goes to stderr (with ``--no-progress`` too), so an hour-long run shows where it is.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from autopaint_app.core import cohort
from autopaint_app.core.case import find_cases_in
from autopaint_app.core.errors import InputError
from autopaint_app.core.presets import BODY_REGION
from autopaint_app.core.io import Volume, publish_staged
from autopaint_app.core.segment import (case_ooi, circle_radius_mm, load_pet_on_reference, refuse_existing,
                                       segment_case)
from autopaint_app.evaluate_store import (CASES_FOLDER, CaseStore, check_unique_ids, in_shard, model_fingerprint,
                                          parse_shard)
from autopaint_app.segment_commands import (ProgressBar, load_for_modality, load_predictor, model_facts,
                                            pipeline_params, run_job)

OUTPUTS = ("cases.csv", "summary.csv", "dice_vs_threshold.csv", "dice_vs_threshold.png", "evaluation.json")
METRICS = ("dice", "precision", "recall")


def run_evaluate(args) -> None:
    """Evaluate; the table goes to stdout (nothing is returned for the CLI to print as JSON)."""
    started = time.perf_counter()
    shard = parse_shard(args.shard)
    params = pipeline_params(args)
    found = find_cases_in(args.cases)
    check_unique_ids(found)
    for files in found:  # before hours of work, not at the case
        if files.label is None:
            raise InputError(files.ct or files.pet, "case has no label; evaluate needs labelled cases")
    mine = [files for index, files in enumerate(found) if in_shard(index, shard)]
    if not (args.resume or args.overwrite):
        refuse_existing(args.out, [*OUTPUTS, *(f"{CASES_FOLDER}/{files.case_id}.json" for files in mine)], False)
    predictor = load_predictor(args.model, args.site, args.modality, args.threads, params.batch_size,
                               precision=args.precision, mode=params.mode)
    store = CaseStore(Path(args.out) / CASES_FOLDER, run_settings(args, params, predictor))
    results = _run_cases(found, mine, store, args, predictor, params)
    for files in found:  # cases of other shards, stored meanwhile
        if files.case_id not in results and (stored := _stored(files, store, args, params)[0]) is not None:
            results[files.case_id] = stored
    missing = [files.case_id for files in found if files.case_id not in results]
    if missing:
        print(f"shard {shard[0]}/{shard[1]} done: {len(found) - len(missing)} of {len(found)} cases stored in "
              f"{store.folder}; the table is written when every case is stored (by the last shard to finish, or "
              f"by evaluate --resume with the same options); missing: {', '.join(missing[:5])}"
              f"{' ...' if len(missing) > 5 else ''}")
        return
    scored = [results[files.case_id] for files in found]
    table = cohort.cohort_table(scored)
    table.update({"site": args.site, "modality": args.modality, "ooi_region": args.ooi_region,
                  "target_uptake": args.target_uptake,
                  "mode": params.mode, "model": model_facts(predictor),
                  "params": params.to_dict(), "seconds": round(time.perf_counter() - started, 2),
                  "case_seconds": round(sum(float(c.facts.get("seconds", 0.0)) for c in scored), 2)})
    if args.modality == "ct" and any(name in table["rows"] for name in cohort.BASELINE_LABELS):
        table["notes"].append("baselines use the PET, which the CT-only model does not see")
    text = format_table(table)
    _write_all(Path(args.out), table, scored, text, args.overwrite or args.resume or shard is not None)
    print(text)
    print(f"wrote {', '.join(OUTPUTS)} to {args.out}")


def run_settings(args, params, predictor) -> dict:
    """Everything that decides a case's residual (threads and batch size do not)."""
    return {"site": args.site, "modality": args.modality, "ooi_region": args.ooi_region, "mode": params.mode,
            "params": params.to_dict(), "model": model_fingerprint(predictor)}


def scoring_settings(args) -> dict:
    """How residuals are scored: against the whole label, or its avid part (``--target-uptake``)."""
    return {"target_uptake": args.target_uptake}


def _run_cases(found, mine, store: CaseStore, args, predictor, params) -> dict:
    """Score this run's cases (reusing stored ones with --resume), storing each as it finishes."""
    results, total, mine_ids = {}, len(found), {files.case_id for files in mine}
    for number, files in enumerate(found, start=1):
        stored, how = _stored(files, store, args, params) if args.resume else (None, "")
        if stored is not None:
            results[files.case_id] = stored
            print(f"case {number}/{total} {files.case_id}: stored result {how}", file=sys.stderr, flush=True)
        elif files.case_id in mine_ids:
            scores, residual = _score_one(files, args, predictor, params, f"{number}/{total} {files.case_id}")
            store.save(scores, files, scoring_settings(args), residual)
            results[files.case_id] = scores
            print(case_line(scores, number, total), file=sys.stderr, flush=True)
    return results


def _stored(files, store: CaseStore, args, params) -> tuple[cohort.CaseScores | None, str]:
    """A stored case scored the way this run asks (re-scored from its residual when needed), and how."""
    found = store.load(files.case_id)
    if found is None:
        return None, ""
    stored, scoring = found
    if scoring != scoring_settings(args):
        return _rescore(files, stored, store, args, params), "re-scored from its stored residual"
    return stored, "reused"


def _score_one(files, args, predictor, params, label: str) -> tuple[cohort.CaseScores, Volume]:
    """Segment and score one case; returns the scores and the residual volume (reference grid)."""
    started = time.perf_counter()
    case = load_for_modality(files, args.modality)
    job = segment_case(case, args.site, args.modality, predictor, params, ooi_region=args.ooi_region)
    segmentation = run_job(job, ProgressBar(False if args.no_progress else None, label))
    suv = segmentation.prepared.suv
    facts = {"seconds": round(time.perf_counter() - started, 2), "slices_kept": len(segmentation.result.kept_slices()),
             "circles": int(sum(len(s.centres) for s in segmentation.result.slices.values()))}
    residual = segmentation.result.residual_volume()
    return _score(case, residual.array, segmentation.ooi, None if suv is None else suv.array, facts, args), residual


def _score(case, residual, ooi, suv, facts: dict, args) -> cohort.CaseScores:
    truth = case.label.array > 0
    if args.target_uptake is not None:
        try:
            truth = cohort.uptake_target(truth, suv, args.target_uptake)
        except ValueError as exc:
            raise InputError(case.files.pet or case.files.ct, f"--target-uptake: {exc}") from None
        if not truth.any():
            raise InputError(case.files.label, f"no label voxel has SUV >= {args.target_uptake:g} x its lesion's SUVmax")
        facts = {**facts, "target_voxels": int(truth.sum())}
    return cohort.score_case(case.case_id, residual, truth, ooi, suv, facts)


def _rescore(files, stored: cohort.CaseScores, store: CaseStore, args, params) -> cohort.CaseScores:
    """The stored residual scored the way this run asks (no inference); the store is updated."""
    residual = store.residual(files.case_id)
    case = load_for_modality(files, args.modality)
    suv = load_pet_on_reference(case)
    ooi = case_ooi(case, args.site, suv, None, [], args.ooi_region, circle_radius_mm(case, params))
    facts = {key: value for key, value in stored.facts.items() if key != "target_voxels"}
    scores = _score(case, residual.array, ooi, None if suv is None else suv.array, facts, args)
    store.save(scores, files, scoring_settings(args))
    return scores


def case_line(scores: cohort.CaseScores, number: int, total: int) -> str:
    """One finished case, for stderr: its best-threshold scores, time and circles."""
    best, facts = scores.best, scores.facts
    return (f"case {number}/{total} {scores.case_id}: AutoPaint [Dice] {best.dice:.3f} (precision {best.precision:.3f}, "
            f"recall {best.recall:.3f}, t = {best.threshold:.2f}), {facts.get('slices_kept', '?')} slices kept, "
            f"{facts.get('circles', '?')} circles, {facts.get('seconds', '?')} s")


def _cell(summary: dict | None) -> str:
    if summary is None or summary["mean"] is None:
        return "-"
    sd = "nan" if summary["sd"] is None else f"{summary['sd']:.3f}"
    return f"{summary['mean']:.3f} ± {sd}"


def format_table(table: dict) -> str:
    """The printed table: one row per method, mean ± SD over cases."""
    names = {cohort.AUTOPAINT_FIXED: f"AutoPaint, fixed t = {table['fixed_threshold']:.2f}",
             cohort.AUTOPAINT_BEST: "AutoPaint, [best t per case]", **cohort.BASELINE_LABELS}
    region = " (organ of interest: whole body)" if table.get("ooi_region") == BODY_REGION else ""
    target = ("" if table.get("target_uptake") is None else
              f", target: label voxels with SUV >= {table['target_uptake']:g} x their lesion's SUVmax")
    lines = [f"AutoPaint evaluation: site {table['site']}{region}, modality {table['modality']}, mode {table['mode']}, "
             f"{len(table['per_case'])} cases{target}",
             f"{'method':<34}{'n':>3}  {'Dice':<16}{'Precision':<16}{'Recall':<16}"]
    for method, row in table["rows"].items():
        lines.append(f"{names[method]:<34}{row['n_cases']:>3}  " + "".join(f"{_cell(row[m]):<16}" for m in METRICS))
    for name, test in table["wilcoxon"].items():
        lines.append(f"Wilcoxon AutoPaint [Dice] vs {cohort.BASELINE_LABELS[name]}: W = {test['statistic']:g}, "
                     f"p = {test['pvalue']:.4g} (n = {test['n']}){' - ' + test['note'] if test['note'] else ''}")
    lines += [f"note: {note}" for note in table["notes"]]
    return "\n".join(lines)


def _case_rows(table: dict) -> list[dict]:
    rows = []
    for case in table["per_case"]:
        row = {"case_id": case["case_id"], "label_voxels": case["label_voxels"]}
        for method in (cohort.AUTOPAINT_FIXED, cohort.AUTOPAINT_BEST, *cohort.BASELINE_LABELS):
            scores = case.get(method, {})
            if "threshold" in scores:
                row[f"{method}_threshold"] = scores["threshold"]
            for metric in METRICS:
                row[f"{method}_{metric}"] = scores.get(metric, "")
        row.update(case["facts"])
        row["note"] = case["note"]
        rows.append(row)
    return rows


def _summary_rows(table: dict) -> list[dict]:
    rows = []
    for method, row in table["rows"].items():
        out = {"method": method, "threshold": row["threshold"] if row["threshold"] is not None else "per case"
               if method == cohort.AUTOPAINT_BEST else "", "n_cases": row["n_cases"]}
        for metric in METRICS:
            out[f"{metric}_mean"], out[f"{metric}_sd"] = row[metric]["mean"], row[metric]["sd"]
        test = table["wilcoxon"].get(method)
        out["wilcoxon_vs_autopaint_best_dice_p"] = "" if test is None else test["pvalue"]
        rows.append(out)
    return rows


def _csv_text(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_all(out: Path, table: dict, scored: list, text: str, overwrite: bool) -> None:
    """Every output written to a hidden staging file, then renamed; nothing is left on failure."""
    from autopaint_app.plots import dice_threshold_plot

    thresholds, curves = cohort.dice_curves(scored)
    sweep_rows = [{"threshold": float(t), "mean_dice": float(sum(c[i] for c in curves.values()) / len(curves)),
                   **{case_id: float(c[i]) for case_id, c in curves.items()}} for i, t in enumerate(thresholds)]
    baseline_means = {cohort.BASELINE_LABELS[name]: row["dice"]["mean"] for name, row in table["rows"].items()
                      if name in cohort.BASELINE_LABELS and row["dice"]["mean"] is not None}
    import json

    documents = {"cases.csv": _csv_text(_case_rows(table)), "summary.csv": _csv_text(_summary_rows(table)),
                 "dice_vs_threshold.csv": _csv_text(sweep_rows), "evaluation.json": json.dumps(table, indent=2)}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create output folder ({exc.strerror})") from None
    staged: dict[Path, Path] = {}
    try:
        for name, content in documents.items():
            staged[out / name] = _stage(out, name, lambda path, c=content: Path(path).write_text(c, encoding="utf-8"))
        title = f"{table['site']} {table['modality']} ({table['mode']}): Dice vs residual threshold"
        staged[out / "dice_vs_threshold.png"] = _stage(out, "dice_vs_threshold.png", lambda path: dice_threshold_plot(
            path, thresholds, curves, baseline_means, table["fixed_threshold"], title))
    except BaseException:  # Ctrl-C too: nothing staged survives
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        raise
    publish_staged(staged)


def _stage(out: Path, name: str, write) -> Path:
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
    os.close(fd)
    try:
        write(temporary)
    except BaseException:
        os.remove(temporary)
        raise
    os.chmod(temporary, 0o644)
    return Path(temporary)
