"""Fast-mode masks of two or more models on one lung PET-CT phantom: time, Dice against the label,
and agreement (Dice, same decisions) of every model with the first.

For an int8 twin against its float model, or any candidate against the shipped one:

    python benchmarks/compare_models.py --seed 3 --slices 16 models/lung_petct_gconv_lap.onnx \\
        models/lung_petct_gconv_lap.int8.onnx --search exhaustive
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autopaint_app.core.autopaint import PipelineParams  # noqa: E402
from autopaint_app.core.inpaint_model import InpaintModel  # noqa: E402
from autopaint_app.core.ooi import compute_ooi  # noqa: E402
from autopaint_app.core.phantom import make_phantom  # noqa: E402
from autopaint_app.core.preprocess import prepare_case, resample_pet_to_ct  # noqa: E402
from autopaint_app.core.presets import LUNG  # noqa: E402
from benchmarks.bench_pipeline import agreement, label_scores, run  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="ONNX models (cards beside them); the first is the baseline")
    parser.add_argument("--seed", type=int, default=3, help="phantom seed (default 3: a tumour on 5 slices)")
    parser.add_argument("--slices", type=int, default=16, help="phantom slices (default 16)")
    parser.add_argument("--search", choices=["coarse-to-fine", "exhaustive"], default=PipelineParams().circle_search)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    phantom = make_phantom("lung", args.seed, n_slices=args.slices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ooi = compute_ooi("lung", ct=phantom.ct, pet=resample_pet_to_ct(phantom.pet, phantom.ct))
    prepared = prepare_case(phantom.ct, phantom.pet, LUNG, "petct")
    params = PipelineParams.from_preset(LUNG, mode="fast", circle_search=args.search)
    results = []
    for path in args.models:
        model = InpaintModel.load(path, threads=args.threads, batch_size=params.batch_size)
        result, seconds = run(prepared, ooi, model, params, None)
        results.append(result)
        print(f"{path.name:<40} {seconds:7.1f} s  vs the label: "
              f"{label_scores(result, phantom.label, sorted(result.slices), params.threshold)}", flush=True)
    for path, result in zip(args.models[1:], results[1:]):
        print(f"{path.name} vs {args.models[0].name}: "
              f"{agreement(result, results[0], sorted(result.slices), params.threshold)}")


if __name__ == "__main__":
    main()
