"""Coarse-to-fine vs exhaustive circle search: decisions and circles inpainted, on lung PET-CT phantoms.

For each phantom, fast mode runs once with the exhaustive search (the real model, every grid
circle). Fast-mode crops are fixed per circle, so a circle's intensity and texture differences do
not depend on which other circles are inpainted: the coarse-to-fine search is then *replayed* on
those recorded differences with the real search code (``screen_circles``, ``volume_gate``,
``refine_circles``, ``slice_candidates``) for several settings, without inpainting again. Printed
per case and setting: share of the grid inpainted, slices whose candidate circles differ from the
exhaustive search's, slices where the detection itself (any candidate or none) differs, and the
Dice of the union of candidate circles over the case. Figures only: nothing is asserted.

    /work/venv/bin/python benchmarks/bench_search.py                       # 6 phantoms, ~10 min
    /work/venv/bin/python benchmarks/bench_search.py --cases 3:16 505:36 --margins 1.5 2.5
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autopaint_app.core.autopaint import (PipelineParams, autopaint, searched_result, slice_candidates,  # noqa: E402
                                          volume_gate, volume_outliers, working_ooi)
from autopaint_app.core.autopaint_circles import circle_centres  # noqa: E402
from autopaint_app.core.autopaint_search import recorded_inpainter, refine_circles, screen_circles  # noqa: E402
from autopaint_app.core.model_store import default_model_path  # noqa: E402
from autopaint_app.core.ooi import compute_ooi  # noqa: E402
from autopaint_app.core.phantom import make_phantom  # noqa: E402
from autopaint_app.core.preprocess import prepare_case, resample_pet_to_ct  # noqa: E402
from autopaint_app.core.presets import LUNG  # noqa: E402

# seed:slices; 501-520 are the README's lung cohort (36 slices each), 3 the pipeline benchmark's case
DEFAULT_CASES = ["3:16", "501:36", "502:36", "505:36", "507:36", "513:36"]


def drain(generator):
    """Run a generator to its end and return its value."""
    try:
        while True:
            next(generator)
    except StopIteration as stop:
        return stop.value


def decisions(searched: dict, params: PipelineParams) -> dict[int, set]:
    """Candidate circle centres per slice, with the volume rule as the pipeline applies it."""
    volume_scores, level = volume_outliers(searched, params)
    return {z: {tuple(int(v) for v in s.centres[i]) for i in slice_candidates(s, params, volume_scores.get(z), level)}
            for z, s in searched.items() if len(s.centres)}


def replay(exhaustive, ooi_w, params: PipelineParams) -> tuple[dict[int, set], float]:
    """The coarse-to-fine search of ``params`` on the exhaustive run's differences: decisions, share inpainted."""
    centres, screenings, inpainters, searched = {}, {}, {}, {}
    for z, s in exhaustive.slices.items():
        if len(s.centres) == 0:
            continue
        centres[z] = circle_centres(ooi_w[z], params.circle_radius_px, params.circle_stride_px)
        inpainters[z] = recorded_inpainter({tuple(int(v) for v in c): (i, t)
                                            for c, i, t in zip(s.centres, s.intensity, s.texture)})
        image = exhaustive.channels[z]           # only its shape is read: the differences are recorded
        screenings[z] = drain(screen_circles(image, None, centres[z], None, params, 32, None, inpainters[z]))
    gate = volume_gate(screenings, params)
    for z in screenings:
        found = drain(refine_circles(screenings[z], exhaustive.channels[z], None, centres[z], None, params, 32, None,
                                     gate, inpainters[z]))
        searched[z] = searched_result(z, exhaustive.channels[z].shape[1:], centres[z], found, params)
    inpainted = sum(len(s.centres) for s in searched.values())
    return decisions(searched, params), inpainted / sum(len(c) for c in centres.values())


def union_dice(a: dict[int, set], b: dict[int, set], radius: int) -> float:
    """Dice of the unions of candidate circles of two runs over all slices (1 when both are empty)."""
    yy, xx = np.mgrid[:512, :512]

    def disks(cands):
        mask = np.zeros((512, 512), dtype=bool)
        for cy, cx in cands:
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
        return mask

    overlap = total = 0
    for z in set(a) | set(b):
        first, second = disks(a.get(z, ())), disks(b.get(z, ()))
        overlap += int((first & second).sum())
        total += int(first.sum() + second.sum())
    return 2 * overlap / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, metavar="SEED:SLICES")
    parser.add_argument("--margins", nargs="+", type=float, default=[1.5, 2.0, 2.5, 3.0],
                        help="volume_screen_margin values to replay (plus the volume gate off)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: shipped lung PET-CT)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from autopaint_app.core.inpaint_model import InpaintModel

    model = InpaintModel.load(args.model or default_model_path("lung", "petct"), threads=args.threads)
    base = PipelineParams.from_preset(LUNG)
    # margin 20 (the largest allowed) lets every circle through the gate: the one-pass flood
    settings = [("coarse-to-fine, volume gate off", dict(volume_screen_margin=20.0))]
    settings += [(f"coarse-to-fine, volume_screen_margin {m:g}", dict(volume_screen_margin=m)) for m in args.margins]
    print(f"model: {model.path}; exhaustive fast-mode runs with the pipeline defaults, then replays")
    totals = {label: [] for label, _ in settings}
    for case in args.cases:
        seed, slices = (int(v) for v in case.split(":"))
        phantom = make_phantom("lung", seed, n_slices=slices)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ooi = compute_ooi("lung", ct=phantom.ct, pet=resample_pet_to_ct(phantom.pet, phantom.ct))
        prepared = prepare_case(phantom.ct, phantom.pet, LUNG, "petct")
        started = time.perf_counter()
        exhaustive = autopaint(prepared, ooi, model, base.with_changes(circle_search="exhaustive"))
        seconds = time.perf_counter() - started
        reference = decisions(exhaustive.slices, base)
        detected = sorted(z for z, c in reference.items() if c)
        print(f"\nphantom lung seed {seed} ({slices} slices, {len(exhaustive.slices)} OOI slices, exhaustive search "
              f"{seconds:.0f} s): exhaustive candidates on slices {detected}")
        ooi_w = working_ooi(prepared, ooi)
        for label, change in settings:
            got, share = replay(exhaustive, ooi_w, base.with_changes(circle_search="coarse-to-fine", **change))
            differ = [z for z in reference if reference[z] != got.get(z, set())]
            detection = [z for z in reference if bool(reference[z]) != bool(got.get(z))]
            dice = union_dice(reference, got, base.circle_radius_px)
            totals[label].append((share, dice, len(detection)))
            print(f"  {label:41s} inpaints {share:4.0%} of the grid; candidates differ on {len(differ)} slices {differ}, "
                  f"detection on {detection}; union-of-candidates Dice {dice:.3f}")
    print("\nmean over the cases (share of the grid inpainted, union Dice vs exhaustive, slices detected differently):")
    for label, rows in totals.items():
        share, dice, detection = np.array(rows).T
        print(f"  {label:41s} {share.mean():4.0%}  Dice {dice.mean():.3f} (min {dice.min():.3f})  "
              f"{int(detection.sum())} slices")


if __name__ == "__main__":
    main()
