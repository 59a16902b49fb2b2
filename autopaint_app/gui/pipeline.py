"""PipelineSession: the autoinpainting run of the open case, its tuning parameters and its result.

The tuning panel and the Run/Cancel actions call the setters here; the session runs
:func:`~autopaint_app.gui.autopaint_jobs.autopaint_steps` through the window's
:class:`~autopaint_app.gui.workers.JobRunner` (one job at a time: opening a case or changing the
OOI supersedes a run), draws each finished slice into the pipeline layers, and at the end hands
the final mask to :class:`~autopaint_app.gui.state.AppState` (lesion review and export).

* threshold and minimum tumour radius re-segment from the stored residuals — no inference
  (:meth:`AutopaintResult.mask`); a threshold change is immediate, a radius change (which rebuilds
  the residual volume, ~0.4 s for the demo case) runs in a second runner;
* radius, stride and top-k changes re-run detection after a short pause (debounced), cancelling
  the running job first;
* a run that is cancelled, fails or is superseded puts the previous result's layers and mask back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal

from autopaint_app.core import metrics
from autopaint_app.core.autopaint import AutopaintResult, PipelineParams
from autopaint_app.core.errors import InputError
from autopaint_app.core.model_store import default_model_path, models_dir
from autopaint_app.core.presets import MODALITY_CHANNELS, get_preset
from autopaint_app.gui.autopaint_jobs import (MODALITY_TITLES, ModelChoice, ModelReady, PreparedReady, RunOutcome,
                                              RunRequest, SliceReady, autopaint_steps, case_modalities, load_predictor,
                                              models_in, resegment_steps, to_progress)
from autopaint_app.gui.pipeline_layers import PipelineOverlays
from autopaint_app.gui.state import AppState
from autopaint_app.gui.workers import JobRunner

AUTOPAINT_JOB = "AutoPaint"
RERUN_DELAY_MS = 500
# Slices arriving within this pause are drawn together (a fast model finishes many per second).
REDRAW_INTERVAL_MS = 100
PREVIEW_LAYERS = ("Final mask", "Final mask outline")
DETECTION_FIELDS = ("circle_radius_px", "circle_stride_px", "top_k")


def model_folders() -> list[Path]:
    """Where models are looked for: :func:`autopaint_app.core.model_store.models_dir` (``models/`` or
    ``$AUTOPAINT_MODELS_DIR``) and the user's model folder (``<app data>/models``)."""
    folders = [models_dir()]
    user = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    if user:
        folders.append(Path(user) / "models")
    return folders


def model_choice_for(path: Path) -> ModelChoice:
    """A list entry for an ONNX file, named after it, with the channels from its card.

    Raises:
        InputError: the card is missing or invalid.
    """
    from autopaint_app.core.inpaint_model import read_card  # onnxruntime only once models are listed

    card = read_card(path.with_suffix(".json"))
    return ModelChoice(path.stem, path, channels=card.channels)


class PipelineSession(QObject):
    """Parameters, runs and result of the autoinpainting pipeline for the open case.

    Signals:
        settings_changed(): site, model, modality, parameters, threshold or slices changed.
        models_changed(): the model list changed.
        run_started(): a run began (its layers are empty).
        slice_processed(z): a slice finished and is drawn.
        run_finished(): the run's result and mask are in place.
        run_stopped(): the run was cancelled or failed; the previous result is back.
        segmentation_updated(): the mask was re-thresholded (no inference).
        metrics_updated(object): ``{"dice", "precision", "recall"}`` of the accepted mask against
            the label, or None (no label or no mask).
        status_changed(str): provider and timings for the status bar.
    """

    settings_changed = Signal()
    models_changed = Signal()
    run_started = Signal()
    slice_processed = Signal(int)
    run_finished = Signal()
    run_stopped = Signal()
    segmentation_updated = Signal()
    metrics_updated = Signal(object)
    status_changed = Signal(str)

    def __init__(self, state: AppState, runner: JobRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.runner = state, runner
        self.reseg_runner = JobRunner(self)
        self.overlays = PipelineOverlays(state.layers)
        self.site, self.modality, self.slices = "lung", "petct", None
        self.params = PipelineParams.from_preset(get_preset(self.site))
        self.threshold = self.params.threshold
        self.result: AutopaintResult | None = None
        self.running = False
        self.models: list[ModelChoice] = []
        self.extra_models: list[ModelChoice] = []
        self.model: ModelChoice | None = None
        self.model_chosen = False  # by the user (set_model), rather than the default for the mode
        self.prepared_cache: dict = {}
        self.model_cache: dict = {}
        self.provider = ""
        self.metrics: dict | None = None
        self._run_id = 0
        self._preview_shown = False
        self._rerun_timer = QTimer(self, singleShot=True, interval=RERUN_DELAY_MS)
        self._rerun_timer.timeout.connect(self._rerun)
        self._redraw_timer = QTimer(self, singleShot=True, interval=REDRAW_INTERVAL_MS)
        self._redraw_timer.timeout.connect(self._redraw_new_slices)
        state.case_loaded.connect(self._on_case_loaded)
        state.ooi_changed.connect(self._on_ooi_changed)
        state.lesion_decision_changed.connect(lambda *_: self._update_metrics())
        runner.job_started.connect(self._on_job_started)
        runner.job_failed.connect(self._on_job_failed)
        self.refresh_models()

    # ------------------------------------------------------------------ models
    def refresh_models(self) -> None:
        """List the models of :func:`model_folders` (valid cards only) plus those added by hand."""
        found = []
        for path in models_in(model_folders()):
            try:
                found.append(model_choice_for(path))
            except InputError:
                continue  # a model without a valid card cannot be run; it is simply not listed
        self.models = found + self.extra_models
        if self.model not in self.models:
            self.model, self.model_chosen = self._default_model(), False
        self.models_changed.emit()

    def add_model(self, choice: ModelChoice) -> None:
        """Add a model (a chosen file, or an in-memory predictor) and select it."""
        self.extra_models = [m for m in self.extra_models if m.key != choice.key] + [choice]
        self.models = [m for m in self.models if m.key != choice.key] + [choice]
        self.models_changed.emit()
        self.set_model(choice)

    def add_model_file(self, path: str | os.PathLike) -> ModelChoice:
        """Add an ONNX file chosen by the user, opened at once so that a wrong file is refused now, by
        name, not at the next run; the opened model is kept for the run (no second load).

        Raises:
            InputError: missing file or card, invalid card, not an ONNX model, or a model whose
                inputs, outputs or channels break the contract (the message names the file).
        """
        path = Path(path)
        predictor = load_predictor(ModelChoice(path.stem, path))
        choice = ModelChoice(path.stem, path, channels=tuple(predictor.channels))
        self.model_cache[choice.key] = predictor
        self.add_model(choice)
        return choice

    def _default_model(self) -> ModelChoice | None:
        """What ``autopaint-cli segment`` would use in the current mode (fast: the int8 twin when there
        is one; reference: the float model), else the first listed model of the site and modality."""
        try:
            default = default_model_path(self.site, self.modality, models_dir(), precision="auto",
                                         mode=self.params.mode)
        except InputError:
            default = None
        chosen = next((m for m in self.models if default is not None and m.path is not None
                       and m.path.resolve() == default.resolve()), None)
        if chosen is not None:
            return chosen
        wanted = MODALITY_CHANNELS[self.modality]
        matching = [m for m in self.models if m.channels == wanted and m.name.startswith(self.site + "_")]
        return (matching or [m for m in self.models if m.channels == wanted] or self.models or [None])[0]

    # ------------------------------------------------------------------ settings
    def set_model(self, choice: ModelChoice) -> None:
        """Use ``choice``; the modality follows the model's channels when the case has them.

        A chosen model stays when the mode changes (the default one follows the mode)."""
        self.model, self.model_chosen = choice, True
        if choice.channels is not None:
            modality = next((m for m, c in MODALITY_CHANNELS.items() if c == choice.channels), self.modality)
            if self.state.loaded is None or modality in case_modalities(self.state.loaded):
                self.modality = modality
        self.settings_changed.emit()

    def set_site(self, site: str) -> None:
        """The site preset's radius, stride, minimum radius, dilations and top-k (mode kept)."""
        self.site = site
        self.params = self._preset_params(site)
        self.settings_changed.emit()

    def _preset_params(self, site: str) -> PipelineParams:
        """The site preset's parameters, keeping the user's mode and search choices."""
        p = self.params
        return PipelineParams.from_preset(get_preset(site), mode=p.mode, circle_search=p.circle_search,
                                          complete_neighbours=p.complete_neighbours, min_lesion_ml=p.min_lesion_ml)

    def set_modality(self, modality: str) -> None:
        self.modality = modality
        self.settings_changed.emit()

    def set_slices(self, slices: tuple[int, ...] | None) -> None:
        """Process only these axial slices (None: every slice of the organ of interest)."""
        self.slices = None if slices is None else tuple(int(z) for z in slices)
        self.settings_changed.emit()

    def set_params(self, **changes) -> None:
        """Change pipeline parameters (validated: raises ValueError naming the problem).

        Radius, stride and top-k changes re-run detection after :data:`RERUN_DELAY_MS` when there
        is a result or a run; the minimum tumour radius and minimum lesion volume re-segment (see
        :meth:`set_min_radius`).
        """
        params = self.params.with_changes(**changes)
        if params == self.params:
            return
        mask_rules_changed = _mask_rules(params) != _mask_rules(self.params)
        old_mode = self.params.mode
        self.params = params
        if params.mode != old_mode and not self.model_chosen:  # reference: the float model; fast: its int8 twin
            self.model = self._default_model()
        self.settings_changed.emit()
        if any(name in changes for name in DETECTION_FIELDS) and (self.result is not None or self.running):
            self._rerun_timer.start()
        elif mask_rules_changed:
            self._resegment()

    def set_min_radius(self, radius_px: float) -> None:
        """Minimum tumour radius (working pixels): re-segments from the stored residuals."""
        self.set_params(min_tumour_radius_px=float(radius_px))

    def set_threshold(self, threshold: float) -> None:
        """Residual threshold of the final mask: re-thresholds at once (no inference)."""
        self.threshold = float(threshold)
        self.settings_changed.emit()
        if self.result is not None and not self.running:
            self._apply_mask(self._mask_of_result())

    def _mask_of_result(self) -> np.ndarray:
        """The finished run's mask with today's threshold, minimum radius and minimum lesion volume."""
        return self.result.mask(self.threshold, self.params.min_tumour_radius_px,
                                min_lesion_ml=self.params.min_lesion_ml)

    # ------------------------------------------------------------------ runs
    def run(self) -> None:
        """Start a run with the current settings (cancelling any job).

        Raises:
            InputError: no case, no model, or a model whose channels differ from the modality.
        """
        loaded = self.state.loaded
        if loaded is None:
            raise InputError(None, "open a case first")
        if self.model is None:
            raise InputError(model_folders()[-1], "no model found; put a .onnx model and its .json card in "
                                                  "models/ or choose one with Model > File…")
        wanted = MODALITY_CHANNELS[self.modality]
        if self.model.channels is not None and self.model.channels != wanted:
            raise InputError(self.model.path, f"the model takes {'+'.join(self.model.channels).upper()} but the "
                                              f"modality is {MODALITY_TITLES[self.modality]}")
        self._rerun_timer.stop()
        request = RunRequest(self.site, self.modality, self.params, self.model, self.threshold, self.slices)
        self._run_id += 1
        run_id = self._run_id
        self.running = True
        self._preview_shown = False
        self.overlays.begin(loaded.reference.shape)
        self.runner.run(AUTOPAINT_JOB, autopaint_steps, loaded, request, self.prepared_cache, self.model_cache,
                        on_item=lambda item: self._on_item(run_id, item),
                        on_result=lambda outcome: self._on_outcome(run_id, outcome), to_progress=to_progress)
        self.run_started.emit()

    def cancel(self) -> None:
        """Stop the running job; the previous result and mask come back."""
        if self.running:
            self.runner.cancel()
            self._stop()

    def _rerun(self) -> None:
        if self.state.loaded is not None and self.model is not None:
            self.run()

    def _stop(self) -> None:
        self._redraw_timer.stop()
        self.running = False
        self._run_id += 1  # late items of the stopped run are ignored
        self.overlays.restore_previous()
        self.state.refresh_mask_layers()
        self.run_stopped.emit()

    def _on_item(self, run_id: int, item) -> None:
        if run_id != self._run_id:
            return
        if isinstance(item, PreparedReady):
            self.prepared_cache[item.key] = item.prepared
        elif isinstance(item, ModelReady):
            self.model_cache[item.key] = item.predictor
            self._set_status(item.provider)
        elif isinstance(item, SliceReady):
            self.overlays.add(item.overlay, self.threshold)
            if not self._preview_shown:  # the live mask preview replaces the previous mask's layers
                self._preview_shown = True
                for name in PREVIEW_LAYERS:
                    self.state.layers.set_data(name, self.overlays.preview)
                self.state.layers.set_data("Rejected lesions", None)
            elif not self._redraw_timer.isActive():
                self._redraw_timer.start()
            if item.progress.stage == "slice":  # decided (phase 2), not only searched
                self.slice_processed.emit(item.overlay.z)

    def _redraw_new_slices(self) -> None:
        """Draw the slices that arrived since the last redraw, all at once (one redraw per view and
        layer however many slices came: the window stays responsive with a fast model)."""
        self._redraw_timer.stop()
        self.overlays.redraw_pending(PREVIEW_LAYERS if self._preview_shown else ())

    def _on_outcome(self, run_id: int, outcome: RunOutcome) -> None:
        if run_id != self._run_id:
            return
        self._redraw_new_slices()
        self.running = False
        self.result = outcome.result
        self.overlays.finish()
        self._set_status(outcome.provider)
        if _mask_rules(outcome.result.params) != _mask_rules(self.params):
            self._resegment()  # the minimum radius or lesion volume changed during the run
        else:
            if self.threshold != outcome.result.params.threshold:
                self._apply_mask(self._mask_of_result())
            else:
                self._apply_mask(outcome.mask, outcome.lesions)
        self.run_finished.emit()

    def _on_job_started(self, name: str) -> None:
        if name != AUTOPAINT_JOB and self.running:  # opening a case or a new OOI superseded the run
            self._stop()

    def _on_job_failed(self, name: str, exc: Exception) -> None:
        if name == AUTOPAINT_JOB and self.running:
            self._stop()

    # ------------------------------------------------------------------ segmentation and metrics
    def _resegment(self) -> None:
        if self.result is None or self.running:
            return
        threshold, rules = self.threshold, _mask_rules(self.params)

        def apply(mask_and_lesions) -> None:
            if (threshold, rules) == (self.threshold, _mask_rules(self.params)) and not self.running:
                self._apply_mask(*mask_and_lesions)

        self.reseg_runner.run("Re-segmenting", resegment_steps, self.result, threshold, rules[0], self.state.loaded,
                              rules[1], on_result=apply)

    def _apply_mask(self, mask: np.ndarray, lesions=None) -> None:
        name = self.model.name if self.model is not None else "model"
        smallest = f", lesions ≥ {self.params.min_lesion_ml:g} ml" if self.params.min_lesion_ml > 0 else ""
        self.state.set_mask(mask, f"AutoPaint ({name}, threshold {self.threshold:.2f}, "
                                  f"min radius {self.params.min_tumour_radius_px:g} px{smallest})", lesions)
        self._update_metrics()
        self.segmentation_updated.emit()

    def _update_metrics(self) -> None:
        loaded, mask = self.state.loaded, self.state.accepted_mask()
        if loaded is None or loaded.case.label is None or mask is None:
            self.metrics = None
        else:
            truth = loaded.case.label.array > 0
            self.metrics = {name: getattr(metrics, name)(mask, truth) for name in ("dice", "precision", "recall")}
        self.metrics_updated.emit(self.metrics)

    def _set_status(self, provider: str) -> None:
        self.provider = provider
        text = f"Model: {self.model.name if self.model else '–'} on {provider}"
        if self.result is not None:
            seconds = self.result.stats.get("seconds", {})
            text += (f" · last run {seconds.get('total', 0):.1f} s (inference {seconds.get('inference', 0):.1f} s, "
                     f"scoring {seconds.get('scoring', 0):.1f} s, {self.result.stats.get('holes_inpainted', 0)} holes)")
        self.status_changed.emit(text)

    def export_inputs(self):
        """``(result, prepared)`` to export with the mask when the shown mask comes from the last run,
        else ``(None, None)``."""
        if self.result is None or self.running or not self.state.mask_source.startswith("AutoPaint"):
            return None, None
        modality = next(m for m, c in MODALITY_CHANNELS.items() if c == tuple(self.result.channel_names))
        preset = self.result.preset
        return self.result, self.prepared_cache.get((preset.name, modality, preset.ct_window, preset.suv_window))

    # ------------------------------------------------------------------ case changes
    def _on_ooi_changed(self) -> None:
        """A new organ of interest for another site brings that site's preset along."""
        if self.state.loaded is not None and self.state.loaded.site != self.site:
            self.set_site(self.state.loaded.site)

    def _on_case_loaded(self) -> None:
        self._rerun_timer.stop()
        self._redraw_timer.stop()
        self.running, self.result, self.metrics = False, None, None
        self._run_id += 1
        self.prepared_cache.clear()
        self.overlays.clear()
        self.site = self.state.loaded.site
        self.params = self._preset_params(self.site)
        modalities = case_modalities(self.state.loaded)
        if self.modality not in modalities:
            self.modality = modalities[0]
        if self.model is None or (self.model.channels and self.model.channels != MODALITY_CHANNELS[self.modality]):
            self.model, self.model_chosen = self._default_model(), False
        self.settings_changed.emit()
        self.metrics_updated.emit(None)


def _mask_rules(params: PipelineParams) -> tuple[float, float]:
    """The parameters that change the mask of a finished run without inference (besides the threshold)."""
    return params.min_tumour_radius_px, params.min_lesion_ml
