"""How close the in-network prefills come to scikit-image's biharmonic inpainting, and their cost.

For each case (PET channel, model-eval's fixed crops and trainer holes), prints PSNR inside the
holes against the truth for: the harmonic prefill, the biharmonic prefill as shipped
(multigrid-preconditioned CG), plain CG with the same start (the session-4 solver, for
comparison) and ``skimage.restoration.inpaint_biharmonic``; plus wall time per crop.

    /work/venv/bin/python benchmarks/bench_prefill.py --cases ../shared/data/hn_petct_dicom --healthy --site hn
    /work/venv/bin/python benchmarks/bench_prefill.py --cases heldout/lung_401 --healthy --site lung --crops 16

Figures only: nothing is asserted. Needs the train extra (torch).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from autopaint_app.core.case import find_cases_in  # noqa: E402
from autopaint_app.core.inpaint_quality import biharmonic_inpaint  # noqa: E402
from autopaint_app.core.model_eval import EvalSettings, case_crops  # noqa: E402
from autopaint_app.training.networks import BiharmonicPrefill, HarmonicPrefill  # noqa: E402

LEVELS = 5  # the compact network's depth: the prefill pyramid has as many halvings


class PlainCGPrefill(BiharmonicPrefill):
    """Session 4's solver: the harmonic start (50 sweeps), then ``steps`` unpreconditioned CG steps."""

    def __init__(self, steps: int = 100) -> None:
        super().__init__(LEVELS, sweeps=50)
        self.steps = steps

    def refine(self, estimate: torch.Tensor, free: torch.Tensor, level: int) -> torch.Tensor:
        if level != 0:
            return estimate
        correction = torch.zeros_like(estimate)
        residual = -free * self._laplacian(self._laplacian(estimate))
        direction, rr = residual, (residual * residual).sum(dim=(2, 3), keepdim=True)
        for _ in range(self.steps):
            curvature = self._operator(direction, free)
            alpha = rr / ((direction * curvature).sum(dim=(2, 3), keepdim=True) + 1e-20)
            correction = correction + alpha * direction
            residual = residual - alpha * curvature
            rr_next = (residual * residual).sum(dim=(2, 3), keepdim=True)
            direction = residual + (rr_next / (rr + 1e-20)) * direction
            rr = rr_next
        return estimate + free * correction


def hole_psnr(filled: np.ndarray, truth: np.ndarray, masks: np.ndarray) -> float:
    hole = np.broadcast_to(masks < 0.5, truth.shape)
    return float(10.0 * np.log10(1.0 / max(float(((filled - truth)[hole] ** 2).mean()), 1e-12)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", required=True, help="case folders (PET needed)")
    parser.add_argument("--site", choices=("lung", "hn"), required=True)
    parser.add_argument("--healthy", action="store_true", help="cases without a label are tumour free")
    parser.add_argument("--crops", type=int, default=32, help="crops per case (default 32)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = EvalSettings(crops_per_case=args.crops, flagged_healthy=args.healthy)
    solvers = {"harmonic": HarmonicPrefill(LEVELS), "plain CG x100": PlainCGPrefill(100),
               "MG-PCG (shipped)": BiharmonicPrefill(LEVELS)}
    print(f"PSNR in the holes (dB) and ms per crop, {args.crops} crops of 128 px per case, PET channel")
    for files in find_cases_in(args.cases):
        crops = case_crops(files, args.site, "pet", settings)
        if isinstance(crops, str):
            print(f"{files.case_id}: skipped ({crops})")
            continue
        truth, masks = crops.images.astype(np.float32), crops.masks.astype(np.float32)
        row = []
        for name, solver in solvers.items():
            start = time.perf_counter()
            with torch.no_grad():
                image, mask = torch.from_numpy(truth), torch.from_numpy(masks)
                filled = solver(image * mask, mask).numpy()
            row.append(f"{name} {hole_psnr(filled, truth, masks):.2f} "
                       f"({1000 * (time.perf_counter() - start) / len(truth):.0f} ms)")
        start = time.perf_counter()
        reference = biharmonic_inpaint(truth, masks)
        row.append(f"scikit-image {hole_psnr(reference, truth, masks):.2f} "
                   f"({1000 * (time.perf_counter() - start) / len(truth):.0f} ms)")
        print(f"{crops.case_id}: " + " | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
