"""Which torch devices a Python can train on: the run's ``device`` and the wizard's probe.

``python -m autopaint_app.training.devices`` prints one JSON line
``{"event": "devices", "torch": "2.13.0", "cuda": false, "cuda_devices": []}`` (``cuda_devices``:
device names). The wizard runs it with the trainer's interpreter, so the GUI process never
imports torch and still learns what a GPU machine's torch can see.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from autopaint_app.core.errors import InputError


def available_devices() -> dict:
    """``{"torch": version, "cuda": bool, "cuda_devices": [names]}`` of this interpreter's torch."""
    cuda = bool(torch.cuda.is_available())
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {"torch": torch.__version__, "cuda": cuda, "cuda_devices": names}


def training_device(name: str) -> torch.device:
    """The torch device of a run's ``device`` (``"cpu"`` or ``"cuda"``).

    Deterministic algorithms on CUDA need cuBLAS's workspace setting before cuBLAS starts, so it
    is set here (unless the user set it).

    Raises:
        InputError: ``"cuda"`` while this torch sees no CUDA device.
    """
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError(None, f"device 'cuda' asked for, but this torch ({torch.__version__}) sees no CUDA "
                                   f"device; use device 'cpu' or a Python with a CUDA build of torch")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.device(name)


def main() -> int:
    print(json.dumps({"event": "devices", **available_devices()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
