"""How much better than biharmonic can a PET inpainter be on our phantoms? The noise-free truth as a yardstick.

Each healthy phantom seed is made twice: as usual, and with the PET's counting noise switched off
(``make_phantom(..., pet_noise=False)``: the scanner-blurred true SUV, everything else identical).
On model-eval's fixed crops and trainer holes of the noisy case (PET channel, as the cards score
it), prints PSNR/SSIM inside the holes against the noisy PET for:

* the noise-free truth itself: what an inpainter that knew the true activity exactly would score;
* the model (a shipped PET model, or any ``--model``);
* ``skimage.restoration.inpaint_biharmonic``;

and the model's and biharmonic's PSNR against the noise-free truth.

    python benchmarks/bench_pet_ceiling.py --site lung --seeds 401 402 --model models/lung_pet_gconv_lap.onnx

Figures only: nothing is asserted. Phantoms are written under ``--work`` (default: a temporary
folder) and reused when present.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autopaint_app.core.case import find_cases  # noqa: E402
from autopaint_app.core.inpaint_model import InpaintModel  # noqa: E402
from autopaint_app.core.inpaint_quality import biharmonic_inpaint, inpainting_metrics  # noqa: E402
from autopaint_app.core.model_eval import EvalSettings, case_crops  # noqa: E402
from autopaint_app.core.phantom import make_phantom, write_phantom  # noqa: E402


def crops_of(site: str, seed: int, pet_noise: bool, work: Path, settings: EvalSettings):
    # Same folder name for both twins: model-eval draws its crops and holes from the case id.
    folder = work / ("noisy" if pet_noise else "clean") / f"{site}_{seed}"
    if not folder.is_dir():
        write_phantom(make_phantom(site, seed, healthy=True, pet_noise=pet_noise), folder)
    return case_crops(find_cases(folder)[0], site, "pet", settings)


def scores(prediction: np.ndarray, truth: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    metrics = inpainting_metrics(prediction, truth, masks)
    return metrics["psnr_hole"], metrics["ssim_hole"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", choices=["lung", "hn"], default="lung")
    parser.add_argument("--seeds", type=int, nargs="+", default=[401, 402, 403, 404])
    parser.add_argument("--model", type=Path, default=None, help="PET model (default: models/<site>_pet_gconv_lap.onnx)")
    parser.add_argument("--crops", type=int, default=32, help="crops per case (model-eval's default)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None, help="folder for the phantom twins")
    args = parser.parse_args()
    model = InpaintModel.load(args.model or ROOT / "models" / f"{args.site}_pet_gconv_lap.onnx", threads=args.threads)
    settings = EvalSettings(crop=int(model.card.raw.get("train_crop", 128)), crops_per_case=args.crops,
                            flagged_healthy=True)  # model-eval's defaults: the card's crop, seed 0
    work = args.work or Path(tempfile.mkdtemp(prefix="pet_ceiling_"))
    pooled: dict[str, list[np.ndarray]] = {"noisy": [], "clean": [], "masks": [], "model": [], "biharmonic": []}
    print(f"model {model.path.name}; {args.crops} crops of {settings.crop} px per case; PSNR dB / SSIM inside the holes")
    for seed in args.seeds:
        noisy, clean = (crops_of(args.site, seed, noise, work, settings) for noise in (True, False))
        if not np.array_equal(noisy.masks, clean.masks):
            raise SystemExit(f"seed {seed}: the twins' crops differ (phantom generator changed?)")
        found = {"noisy": noisy.images, "clean": clean.images, "masks": noisy.masks,
                 "model": np.asarray(model(noisy.images, noisy.masks), np.float32),
                 "biharmonic": biharmonic_inpaint(noisy.images, noisy.masks)}
        for name, array in found.items():
            pooled[name].append(array)
        report(f"{args.site}_{seed}", found)
    report("pooled", {name: np.concatenate(arrays) for name, arrays in pooled.items()})


def report(label: str, found: dict[str, np.ndarray]) -> None:
    noisy, clean, masks = found["noisy"], found["clean"], found["masks"]
    row = [f"{name} {p:.2f} / {s:.4f}" for name, (p, s) in
           (("noise-free truth", scores(clean, noisy, masks)), ("model", scores(found["model"], noisy, masks)),
            ("biharmonic", scores(found["biharmonic"], noisy, masks)))]
    against_clean = [f"{name} {scores(found[name], clean, masks)[0]:.2f}" for name in ("model", "biharmonic")]
    print(f"{label:10s} vs noisy PET: {'; '.join(row)} | vs noise-free PET: {', '.join(against_clean)}", flush=True)


if __name__ == "__main__":
    main()
