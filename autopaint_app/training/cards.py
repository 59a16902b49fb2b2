"""Finish a model card after export: held-out figures and the run's lineage.

``export`` writes the card from the training run (validation on the run's held-out patients, which
also chose the best epoch). Two facts only arrive later and go in here:

- ``held_out``: ``autopaint-cli model-eval`` on cases no training step and no checkpoint choice
  ever saw (fresh phantom seeds; real patients where there are any), model vs ``inpaint_biharmonic``
  on the same crops and holes, with the exact command;
- ``training.init_from``: when the run was fine-tuned from another checkpoint (``run.json``'s
  ``init_from``), that checkpoint's own run (config, steps, wall time), so the card states the
  model's whole training budget.

Usage::

    python -m autopaint_app.training.cards --card models/lung_ct_gconv_lap.json \\
        --held-out eval/lung_ct.json --command "autopaint-cli model-eval ..." \\
        [--init-checkpoint runs/lung_petct/checkpoints/best.pt]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autopaint_app.core.errors import InputError
from autopaint_app.core.inpaint_model import card_path_for
from autopaint_app.core.io import file_sha256, write_json
from autopaint_app.training import checkpoints as ckpt


_HOLE_KEYS = ("psnr_hole", "ssim_hole", "mse_hole")


def _hole_figures(score: dict) -> dict:
    """Model and biharmonic hole metrics of one report row, with its per-channel rows when present
    (reports written before model-eval scored channels apart have none)."""
    figures = {"model": {k: score["model"][k] for k in _HOLE_KEYS},
               "biharmonic": {k: score["biharmonic"][k] for k in _HOLE_KEYS}}
    if score.get("by_channel"):
        figures["by_channel"] = {name: {side: {k: row[side][k] for k in _HOLE_KEYS} for side in ("model", "biharmonic")}
                                 for name, row in score["by_channel"].items()}
    return figures


def held_out_section(evaluation: dict, command: str) -> dict:
    """The card's ``held_out`` entry from a ``model-eval`` JSON report (per case and pooled)."""
    cases = [{"case": case.get("case_id", case.get("case")), "crops": case.get("crops"), **_hole_figures(case),
              "wins": case.get("wins"), "in_training_set": case.get("in_training_set"),
              **({"synthetic_pet": True} if case.get("synthetic_pet") else {})}
             for case in evaluation.get("cases", [])]
    pooled = evaluation["pooled"]
    return {"command": command, "crop": evaluation.get("crop"), "crops_per_case": evaluation.get("crops_per_case"),
            "seed": evaluation.get("seed"), "scored_on": evaluation.get("scored_on"), "cases": cases,
            "pooled": {"crops": pooled["crops"], "hole_coverage": pooled.get("hole_coverage"), **_hole_figures(pooled),
                       "wins": pooled.get("wins")}}


def lineage_section(checkpoint: str | Path) -> dict:
    """What the ``init_from`` checkpoint (or exported model) had been trained on and for how long."""
    if Path(checkpoint).suffix.lower() == ".onnx":
        return _model_lineage(Path(checkpoint))
    state = ckpt.load_checkpoint(checkpoint)
    run = state.get("run_config") or {}
    return {"checkpoint": str(checkpoint), "command": state.get("command"), "epochs_done": state.get("epoch"),
            "global_step": state.get("global_step"), "wall_time_s": round(float(state.get("wall_time_s", 0.0)), 1),
            "best": state.get("best"), "init_from": state.get("init_from"),
            "config": {k: run.get(k) for k in ("cases", "site", "modality", "train_crop", "batch_size",
                                               "epochs_phase1", "epochs_phase2", "lr1", "lr2",
                                               "vgg_downsample", "max_slices_per_case", "prefill",
                                               "prefill_channels", "rim_lesions", "rim_lesion_region",
                                               "channel_loss_weights", "pet_smoothing_px",
                                               "ct_smoothing_px")}}


def _model_lineage(model: Path) -> dict:
    """An exported model as the start: its file's SHA-256 and its card's own training section
    (which holds that model's lineage in turn), so the chain survives the file being replaced."""
    card = _read_json(card_path_for(model))
    return {"model": str(model), "sha256": file_sha256(model), "name": card.get("name"),
            "training": card.get("training"), "validation": card.get("validation"),
            "held_out": card.get("held_out")}


def finish_card(card_path: Path, held_out: Path, command: str, init_checkpoint: Path | None = None) -> dict:
    """Add ``held_out`` (and ``training.init_from``) to the card at ``card_path``; atomic rewrite.

    Raises:
        InputError: unreadable card or report, or a report made for another model.
    """
    card, report = _read_json(card_path), _read_json(held_out)
    model_name = Path(str((report.get("model") or {}).get("path", ""))).stem
    if model_name and model_name != card.get("name"):
        raise InputError(held_out, f"report is for model {model_name!r}, the card is {card.get('name')!r}")
    try:
        card["held_out"] = held_out_section(report, command)
    except KeyError as error:
        raise InputError(held_out, f"not an autopaint-cli model-eval report (missing {error})") from None
    if init_checkpoint is not None:
        card.setdefault("training", {})["init_from"] = lineage_section(init_checkpoint)
    write_json(card, card_path, overwrite=True)
    return card


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"not a readable JSON file ({error})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autopaint_app.training.cards", description=__doc__.split("\n")[0])
    parser.add_argument("--card", type=Path, required=True)
    parser.add_argument("--held-out", type=Path, required=True, help="autopaint-cli model-eval --out JSON")
    parser.add_argument("--command", required=True, help="the model-eval command that produced the report")
    parser.add_argument("--init-checkpoint", type=Path, help="the run's init_from checkpoint")
    args = parser.parse_args(argv)
    try:
        finish_card(args.card, args.held_out, args.command, args.init_checkpoint)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"updated {args.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
