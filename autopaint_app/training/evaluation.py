"""Inpainting quality of the network and of the biharmonic baseline: see :mod:`autopaint_app.core.inpaint_quality`.

Re-exported here for the trainer and the export; the code lives in core so that the held-out
evaluation (``autopaint-cli model-eval``, no torch) scores with the very same functions.
"""

from autopaint_app.core.inpaint_quality import (  # noqa: F401 (re-exported)
    METRIC_NAMES,
    biharmonic_inpaint,
    biharmonic_metrics,
    composite,
    inpainting_metrics,
)
