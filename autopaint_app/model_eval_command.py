"""`autopaint-cli model-eval`: a model against the biharmonic baseline on held-out healthy crops.

Prints one row per case and a pooled row (MSE, PSNR, SSIM inside the holes for the model and for
``inpaint_biharmonic``, and the crops the model wins), and writes everything (per crop too) to
``--out`` as JSON. The work is :func:`autopaint_app.core.model_eval.evaluate_model`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from autopaint_app.core.case import find_cases_in
from autopaint_app.core.errors import InputError
from autopaint_app.core.io import write_json
from autopaint_app.core.model_eval import EvalSettings, evaluate_model, modality_of
from autopaint_app.core.segment import refuse_existing
from autopaint_app.segment_commands import load_predictor, model_facts


def _crop_size(args, model) -> int:
    """The crop side: ``--crop``, else the card's ``train_crop``; a multiple of the model's size_multiple."""
    step = model.size_multiple
    crop, where = (args.crop, "--crop") if args.crop is not None else (
        model.card.raw.get("train_crop"), model.path.with_suffix(".json"))
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < step or crop % step:
        hint = "" if args.crop is not None else " (card field train_crop); pass --crop"
        raise InputError(where, f"crop size must be a positive multiple of the model's size_multiple {step} px, "
                                f"got {crop!r}{hint}")
    return crop


def run_model_eval(args) -> None:
    """Evaluate; the table goes to stdout, progress to stderr (nothing is returned for the CLI to print)."""
    started = time.perf_counter()
    if args.out is not None:
        refuse_existing(args.out.parent, (args.out.name,), args.overwrite)
    if args.crops < 1:
        raise InputError("--crops", f"must be at least 1, got {args.crops}")
    found = find_cases_in(args.cases)
    # modality None: --model is required, so the default-model lookup (which needs it) never runs.
    model = load_predictor(args.model, args.site, None, args.threads, batch_size=8, card_windows=False)
    modality = modality_of(model.channels)
    settings = EvalSettings(crop=_crop_size(args, model), crops_per_case=args.crops, seed=args.seed,
                            flagged_healthy=args.healthy, synthetic_pet=args.synthetic_pet)
    result = evaluate_model(model, found, args.site, modality, settings,
                            report=lambda line: print(line, file=sys.stderr, flush=True))
    seen = set(model.card.raw.get("training", {}).get("train_patients") or [])
    for case in result["cases"]:
        case["in_training_set"] = case["case_id"] in seen
    result = {"model": model_facts(model), "site": args.site, "modality": modality, "crop": settings.crop,
              "crops_per_case": settings.crops_per_case, "seed": settings.seed, "healthy_flag": settings.flagged_healthy,
              "tumour_margin_mm": settings.tumour_margin_mm, "scored_on": "composite; channels pooled (by_channel: each alone)", **result,
              "seconds": round(time.perf_counter() - started, 2)}
    print(format_table(result))
    if args.out is not None:
        write_json(result, args.out, overwrite=args.overwrite)
        print(f"wrote {args.out}")


def _row(name: str, score: dict) -> str:
    model, baseline, wins, n = score["model"], score["biharmonic"], score["wins"], score["crops"]
    return (f"{name:<22}{n:>6}{100 * score['hole_coverage']:>7.1f}%"
            f"  {model['mse_hole']:>8.5f} {baseline['mse_hole']:>8.5f}"
            f"  {model['psnr_hole']:>6.2f} {baseline['psnr_hole']:>6.2f}"
            f"  {model['ssim_hole']:>6.4f} {baseline['ssim_hole']:>6.4f}"
            f"  {wins['psnr_hole']:>4}/{n:<4} {wins['ssim_hole']:>4}/{n}")


def _channel_row(name: str, score: dict) -> str:
    model, baseline = score["model"], score["biharmonic"]
    return (f"{name:<36}  {model['mse_hole']:>8.5f} {baseline['mse_hole']:>8.5f}"
            f"  {model['psnr_hole']:>6.2f} {baseline['psnr_hole']:>6.2f}"
            f"  {model['ssim_hole']:>6.4f} {baseline['ssim_hole']:>6.4f}")


def format_table(result: dict) -> str:
    """The printed table: hole metrics of the model and of biharmonic per case, then pooled."""
    name = Path(result["model"]["path"]).name
    lines = [f"model-eval: {name} (site {result['site']}, {result['modality']}), {result['crop']}-px crops, "
             f"{result['crops_per_case']} per case, seed {result['seed']}; inside the holes",
             f"{'case':<22}{'crops':>6}{'holes':>8}  {'MSE':>8} {'(bih.)':>8}  {'PSNR':>6} {'(bih.)':>6}"
             f"  {'SSIM':>6} {'(bih.)':>6}  {'wins PSNR':>9} {'wins SSIM':>9}"]
    for case in result["cases"]:
        marker = (" *" if case.get("in_training_set") else "") + (" s" if case.get("synthetic_pet") else "")
        lines.append(_row(case["case_id"][:19] + marker, case))
    pooled = result["pooled"]
    lines.append(_row(f"pooled ({pooled['cases']} cases)", pooled))
    if len(pooled.get("by_channel", {})) > 1:
        for name, score in pooled["by_channel"].items():
            lines.append(_channel_row(f"  {name.upper()} channel", score))
    for skipped in result["skipped"]:
        lines.append(f"skipped {skipped['case_id']}: {skipped['reason']}")
    if any(case.get("synthetic_pet") for case in result["cases"]):
        lines.append("s PET synthesised from the case's CT (--synthetic-pet): only its CT channel is real data")
    if any(case.get("in_training_set") for case in result["cases"]):
        lines.append("* case used for training (listed in the card's train_patients): not held out")
    return "\n".join(lines)
