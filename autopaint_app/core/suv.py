"""Body-weight SUV (SUVbw) from DICOM PET headers, read with pydicom.

``SUVbw [g/ml] = C [Bq/ml] x body weight [g] / injected dose decayed to the reference time [Bq]``

The conversion is one multiplicative factor per file: ``SUV = (stored value x RescaleSlope +
RescaleIntercept) x factor``. Which factor depends on ``Units (0054,1001)``:

- ``BQML``: ``factor = weight_g / (dose_Bq x 2 ** (-dt / half_life_s))``. ``dt`` depends on
  ``DecayCorrection (0054,1102)``:

  - ``START``: the images are decay corrected to the series reference time, so the dose is decayed
    from injection to that time (one factor for the whole series).
  - ``ADMIN``: the images are already decay corrected to the administration time, so ``dt = 0``.
  - ``NONE``: each slice holds activity at its own acquisition time, so we decay the dose to each
    file's ``AcquisitionDate/Time``. That gives one factor per file (decay during a frame, about
    1 % for a 3-minute FDG frame, is ignored). The result carries a warning.

- ``GML``: the values are already SUV, ``factor = 1``.
- ``CNTS`` (Philips): the private tag ``(7053,1000)`` "SUV scale factor" is the factor. If it is
  absent, or the user overrides weight or dose, we use ``(7053,1009)``, the activity concentration
  factor (Bq/ml per count), and apply the BQML rule to ``counts x (7053,1009)``. With overrides but
  no ``(7053,1009)``, we rescale ``(7053,1000)`` by ``(w_user / w_tag) x (dose_tag / dose_user)``.

Reference time (START). We follow the QIBA vendor-neutral pseudo-code.
``SeriesDate/SeriesTime (0008,0021/0031)`` is used when present and not later than the earliest
``AcquisitionDate/Time (0008,0022/0032)`` of the series. Otherwise, when it is missing,
unparseable or later (post-processing rewrites it; de-identification puts placeholders such as
``111111`` in it), the earliest acquisition date/time is used and a warning is recorded.

Injection time: ``RadiopharmaceuticalStartDateTime (0018,1078)`` is preferred. Otherwise
``RadiopharmaceuticalStartTime (0018,1072)`` is placed on the reference date. If a time-only
injection then falls after the reference time, the scan crossed midnight (for example, injection
23:50 and scan 00:40), and the injection is moved to the previous day.

User overrides (``weight_kg``, ``dose_mbq``) take precedence over the tags. A tag that is needed
but missing raises :class:`InputError` naming the file and the tag.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass

import numpy as np
import pydicom
from pydicom.valuerep import DA, DT, TM

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume, dicom_series_files, read_volume

PHILIPS_CREATOR = "Philips PET Private Group"
PHILIPS_SUV_TAG = (0x7053, 0x1000)
PHILIPS_ACTIVITY_TAG = (0x7053, 0x1009)
# Tag numbers for error messages.
_TAG_TEXT = {
    "PatientWeight": "(0010,1030)", "Units": "(0054,1001)", "DecayCorrection": "(0054,1102)",
    "RadiopharmaceuticalInformationSequence": "(0054,0016)", "RadionuclideTotalDose": "(0018,1074)",
    "RadionuclideHalfLife": "(0018,1075)", "RadiopharmaceuticalStartTime": "(0018,1072)",
    "AcquisitionTime": "(0008,0032)",
}
_HINTS = {"PatientWeight": "; pass --weight KG", "RadionuclideTotalDose": "; pass --dose MBQ"}


@dataclass(frozen=True)
class SuvConversion:
    """How stored PET values were turned into SUVbw.

    Attributes:
        factor: SUV = rescaled value x factor (of the first file; see ``slice_factors``).
        units: the ``Units`` tag (``BQML``, ``CNTS``, ``GML``).
        method: human-readable rule, e.g. ``"BQML decay-corrected to START"``.
        slice_factors: one factor per file, in the order of ``files``; all equal in the normal case.
        files: the files the factors belong to.
        weight_kg / injected_dose_bq / half_life_s: values used (tag or override), None if unused.
        injection_time / reference_time: ISO date-times used for the decay, None if unused.
        reference_rule: which tag gave the reference time.
        decayed_dose_bq: dose at the reference time, None if unused.
        decay_correction: the ``DecayCorrection`` tag, "" if unused.
        warnings: things the user should know (placeholder SeriesTime, midnight, overrides...).
    """

    factor: float
    units: str
    method: str
    slice_factors: tuple[float, ...]
    files: tuple[str, ...]
    weight_kg: float | None = None
    injected_dose_bq: float | None = None
    half_life_s: float | None = None
    injection_time: str | None = None
    reference_time: str | None = None
    reference_rule: str = ""
    decayed_dose_bq: float | None = None
    decay_correction: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def is_uniform(self) -> bool:
        """True when every file has the same factor (within 1e-6 relative)."""
        return bool(np.allclose(self.slice_factors, self.factor, rtol=1e-6, atol=0.0))

    def summary(self) -> dict:
        """JSON-friendly dict for ``Volume.meta["suv"]`` (per-file factors only when they differ)."""
        info = asdict(self)
        info.pop("files")
        info["uniform"] = self.is_uniform
        if self.is_uniform:
            info.pop("slice_factors")
        info["warnings"] = list(self.warnings)
        return info


def suv_factor_from_dicom(files: list[str], weight_kg: float | None = None,
                          dose_mbq: float | None = None) -> SuvConversion:
    """SUVbw factor(s) of one DICOM PET series.

    Args:
        files: the series' files (any order; factors are returned in this order).
        weight_kg: patient weight override in kg (precedes ``PatientWeight``).
        dose_mbq: injected dose override in MBq at injection time (precedes ``RadionuclideTotalDose``).

    Returns:
        The conversion; ``SUV = (stored x slope + intercept) x factor``.

    Raises:
        InputError: unreadable file, not PET, unsupported units or decay correction, a needed tag
            missing (naming the file and the tag), injection after the scan, non-positive override.
    """
    if not files:
        raise InputError(None, "no DICOM files given for the SUV conversion")
    for name, value in (("--weight", weight_kg), ("--dose", dose_mbq)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(name, f"must be a positive number, got {value}")
    headers = [_read_header(f) for f in files]
    first, path = headers[0], files[0]
    modality = str(first.get("Modality", ""))
    if modality != "PT":
        raise InputError(path, f"not a PET image (Modality {modality or 'missing'}); SUV needs Modality PT")
    units = str(_required(first, "Units", path)).upper()
    if units == "GML":
        overridden = weight_kg is not None or dose_mbq is not None
        warn = ("weight/dose overrides ignored: the images are already SUV (Units GML)",) if overridden else ()
        return SuvConversion(1.0, units, "GML (already SUV)", (1.0,) * len(files), tuple(files), warnings=warn)
    if units == "BQML":
        return _bqml_conversion(headers, files, [1.0] * len(files), weight_kg, dose_mbq, units, "BQML")
    if units == "CNTS":
        return _philips_conversion(headers, files, weight_kg, dose_mbq)
    raise InputError(path, f"PET Units {units!r} not supported for SUV (expected BQML, GML or Philips CNTS)")


def read_pet_suv(folder: str | os.PathLike, weight_kg: float | None = None, dose_mbq: float | None = None,
                 series_uid: str | None = None) -> Volume:
    """Read a DICOM PET series as SUVbw.

    Args:
        folder: folder holding the PET series.
        weight_kg, dose_mbq: overrides, see :func:`suv_factor_from_dicom`.
        series_uid: which series, when the folder holds several.

    Returns:
        float32 SUV volume, array ``(z, y, x)``, geometry exactly as SimpleITK reads the series;
        ``meta["suv"]`` holds :meth:`SuvConversion.summary`.
    """
    raw = read_volume(folder, as_float=True, series_uid=series_uid)
    files = dicom_series_files(folder, series_uid)
    conversion = suv_factor_from_dicom(files, weight_kg, dose_mbq)
    if conversion.is_uniform:
        suv = raw.array * np.float32(conversion.factor)
    else:
        # SimpleITK orders slices by position; map every file to its z index the same way.
        z_of_file = _slice_indices(files, raw)
        per_z = np.empty(raw.shape[0], dtype=np.float32)
        per_z[z_of_file] = conversion.slice_factors
        suv = raw.array * per_z[:, None, None]
    meta = dict(raw.meta, suv=conversion.summary())
    return Volume(suv.astype(np.float32, copy=False), raw.spacing, raw.origin, raw.direction, raw.source, meta)


# --- BQML and Philips rules ---------------------------------------------------------------------


def _bqml_conversion(headers, files, activity_per_value, weight_kg, dose_mbq, units, label) -> SuvConversion:
    """BQML rule; ``activity_per_value[i]`` converts file i's values to Bq/ml (1 for BQML)."""
    first, path = headers[0], files[0]
    weight = weight_kg if weight_kg is not None else _positive(first, "PatientWeight", path)
    radiopharm = _radiopharm_item(first, path) if dose_mbq is None else _optional_radiopharm(first)
    dose_bq = dose_mbq * 1e6 if dose_mbq is not None else _positive(radiopharm, "RadionuclideTotalDose", path)
    correction = str(_required(first, "DecayCorrection", path)).upper()
    warnings = _override_warnings(first, radiopharm, weight_kg, dose_mbq)
    common = dict(units=units, files=tuple(files), weight_kg=float(weight), injected_dose_bq=float(dose_bq),
                  decay_correction=correction)
    if correction == "ADMIN":
        factors = tuple(a * weight * 1000.0 / dose_bq for a in activity_per_value)
        return SuvConversion(factors[0], method=f"{label} decay-corrected to ADMIN (no decay)", slice_factors=factors,
                             decayed_dose_bq=float(dose_bq), reference_rule="administration", warnings=tuple(warnings),
                             **common)
    if correction not in ("START", "NONE"):
        raise InputError(path, f"DecayCorrection {correction!r} not supported (expected START, ADMIN or NONE)")
    half_life = _positive(_radiopharm_item(first, path), "RadionuclideHalfLife", path)
    if correction == "START":
        reference, rule, ref_warnings = _series_reference_time(headers, files)
        references = [reference] * len(files)
    else:
        references = [_required_acquisition(h, f) for h, f in zip(headers, files)]
        rule, ref_warnings = "AcquisitionDate/Time of each file", [
            "DecayCorrection NONE: dose decayed to each file's acquisition start (decay within a frame ignored)"]
    injection, inj_warnings = _injection_datetime(radiopharm, path, references[0])
    decayed = [_decayed_dose(dose_bq, half_life, injection, ref, path) for ref in references]
    factors = tuple(a * weight * 1000.0 / d for a, d in zip(activity_per_value, decayed))
    return SuvConversion(
        factors[0], method=f"{label} decay-corrected to {correction}", slice_factors=factors,
        half_life_s=float(half_life),
        injection_time=injection.isoformat(), reference_time=references[0].isoformat(), reference_rule=rule,
        decayed_dose_bq=float(decayed[0]), warnings=tuple(warnings + ref_warnings + inj_warnings), **common)


def _philips_conversion(headers, files, weight_kg, dose_mbq) -> SuvConversion:
    """Units CNTS: Philips private tags (7053,1000) SUV factor or (7053,1009) Bq/ml per count."""
    suv_tags = [_philips_value(h, PHILIPS_SUV_TAG) for h in headers]
    activity_tags = [_philips_value(h, PHILIPS_ACTIVITY_TAG) for h in headers]
    overridden = weight_kg is not None or dose_mbq is not None
    if all(v is not None for v in suv_tags) and not overridden:
        return SuvConversion(suv_tags[0], "CNTS", "Philips CNTS via (7053,1000)", tuple(suv_tags), tuple(files))
    if all(v is not None for v in activity_tags):
        return _bqml_conversion(headers, files, activity_tags, weight_kg, dose_mbq, "CNTS",
                                "Philips CNTS via (7053,1009) to BQML,")
    if all(v is not None for v in suv_tags):
        return _rescaled_philips(headers, files, suv_tags, weight_kg, dose_mbq)
    raise InputError(files[0], "Units CNTS without Philips private tag (7053,1000) SUV scale factor or "
                               "(7053,1009) activity concentration factor; cannot convert counts to SUV")


def _rescaled_philips(headers, files, suv_tags, weight_kg, dose_mbq) -> SuvConversion:
    """(7053,1000) was computed from the tag weight and dose; SUV is proportional to weight / dose."""
    first, path = headers[0], files[0]
    weight = weight_kg if weight_kg is not None else _positive(first, "PatientWeight", path)
    scale = weight / _positive(first, "PatientWeight", path)
    dose_bq = None
    if dose_mbq is not None:
        dose_bq = dose_mbq * 1e6
        scale *= _positive(_radiopharm_item(first, path), "RadionuclideTotalDose", path) / dose_bq
    factors = tuple(v * scale for v in suv_tags)
    return SuvConversion(factors[0], "CNTS", "Philips CNTS via (7053,1000) rescaled by weight/dose overrides",
                         factors, tuple(files), weight_kg=float(weight), injected_dose_bq=dose_bq,
                         warnings=("weight/dose override applied by rescaling (7053,1000)",))


# --- times ----------------------------------------------------------------------------------------


def _series_reference_time(headers, files) -> tuple[dt.datetime, str, list[str]]:
    """Series date/time unless missing or later than the earliest acquisition (QIBA rule)."""
    first = headers[0]
    acquisitions = [a for a in (_acquisition_datetime(h) for h in headers) if a is not None]
    earliest = min(acquisitions) if acquisitions else None
    series_date = _parse(DA, first.get("SeriesDate")) or (earliest.date() if earliest else None)
    series_time = _parse(TM, first.get("SeriesTime"))
    series = dt.datetime.combine(series_date or dt.date(2000, 1, 1), series_time) if series_time else None
    if series is None and earliest is None:
        raise InputError(files[0], "missing DICOM tags SeriesTime (0008,0031) and AcquisitionTime (0008,0032); "
                                   "cannot find the decay reference time")
    if earliest is None:
        return series, "SeriesDate/SeriesTime", []
    if series is None:
        return earliest, "earliest AcquisitionDate/Time", ["SeriesTime missing or invalid: decay corrected to the "
                                                           "earliest AcquisitionTime"]
    if series > earliest:
        return earliest, "earliest AcquisitionDate/Time", [
            f"SeriesTime {series.time()} is after the earliest AcquisitionTime {earliest.time()} (placeholder or "
            "post-processing time); decay corrected to the earliest acquisition instead"]
    return series, "SeriesDate/SeriesTime", []


def _acquisition_datetime(ds) -> dt.datetime | None:
    full = _parse(DT, ds.get("AcquisitionDateTime"))
    if full is not None:
        return full.replace(tzinfo=None)
    time = _parse(TM, ds.get("AcquisitionTime"))
    if time is None:
        return None
    date = _parse(DA, ds.get("AcquisitionDate")) or _parse(DA, ds.get("SeriesDate")) or dt.date(2000, 1, 1)
    return dt.datetime.combine(date, time)


def _required_acquisition(ds, path) -> dt.datetime:
    found = _acquisition_datetime(ds)
    if found is None:
        raise _missing(path, "AcquisitionTime")
    return found


def _injection_datetime(radiopharm, path, reference: dt.datetime) -> tuple[dt.datetime, list[str]]:
    """Injection date-time; a time-only start after the reference time means the scan crossed midnight."""
    full = _parse(DT, radiopharm.get("RadiopharmaceuticalStartDateTime"))
    if full is not None:
        return full.replace(tzinfo=None), []
    time = _parse(TM, radiopharm.get("RadiopharmaceuticalStartTime"))
    if time is None:
        raise InputError(path, "missing DICOM tag RadiopharmaceuticalStartTime (0018,1072) "
                               "(nor RadiopharmaceuticalStartDateTime (0018,1078))")
    injection = dt.datetime.combine(reference.date(), time)
    if injection > reference:
        injection -= dt.timedelta(days=1)
        return injection, [f"injection time {time} is after the scan time {reference.time()}: "
                           "assumed the scan crossed midnight (injection on the previous day)"]
    return injection, []


def _decayed_dose(dose_bq, half_life_s, injection, reference, path) -> float:
    elapsed = (reference - injection).total_seconds()
    if elapsed < 0:
        raise InputError(path, f"injection at {injection} is after the scan reference time {reference}")
    return dose_bq * 2.0 ** (-elapsed / half_life_s)


# --- tag access -----------------------------------------------------------------------------------


def _read_header(path: str):
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as DICOM ({exc})") from None


def _missing(path, keyword) -> InputError:
    tag = f"missing DICOM tag {keyword} {_TAG_TEXT.get(keyword, '')}".rstrip()
    return InputError(path, tag + _HINTS.get(keyword, ""))


def _required(ds, keyword, path):
    value = ds.get(keyword) if ds is not None else None
    if value is None or str(value).strip() == "":
        raise _missing(path, keyword)
    return value


def _positive(ds, keyword, path) -> float:
    value = _required(ds, keyword, path)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(path, f"DICOM tag {keyword} {_TAG_TEXT.get(keyword, '')} is not a number: {value!r}") from None
    if not (np.isfinite(number) and number > 0):
        # Scanners write 0 for "unknown" weight; say so and point at the override.
        raise InputError(path, f"DICOM tag {keyword} {_TAG_TEXT[keyword]} is {value} (not a positive number)"
                               + _HINTS.get(keyword, ""))
    return number


def _optional_radiopharm(ds):
    sequence = ds.get("RadiopharmaceuticalInformationSequence")
    return sequence[0] if sequence else pydicom.Dataset()


def _radiopharm_item(ds, path):
    sequence = ds.get("RadiopharmaceuticalInformationSequence")
    if not sequence:
        raise _missing(path, "RadiopharmaceuticalInformationSequence")
    return sequence[0]


def _override_warnings(first, radiopharm, weight_kg, dose_mbq) -> list[str]:
    notes = []
    if weight_kg is not None:
        notes.append(f"weight override {weight_kg} kg used (tag: {first.get('PatientWeight', 'missing')})")
    if dose_mbq is not None:
        tag_dose = radiopharm.get("RadionuclideTotalDose", "missing")
        notes.append(f"dose override {dose_mbq} MBq used (tag: {tag_dose} Bq)")
    return notes


def _philips_value(ds, tag) -> float | None:
    """A Philips private DS value, found through its private creator (falls back to the usual block)."""
    try:
        element = ds.private_block(tag[0], PHILIPS_CREATOR)[tag[1] & 0xFF]
    except KeyError:
        element = ds.get(tag)
    if element is None or element.value in (None, ""):
        return None
    value = element.value
    if isinstance(value, bytes):  # unknown VR (e.g. explicit VR "UN"): DS text
        value = value.decode("ascii", "ignore").strip("\x00 ")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse(kind, value):
    """Parse a DA/TM/DT value (str or already parsed); None when missing or malformed."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if kind is TM:  # old ACR-NEMA style "08:24:00"
        text = text.replace(":", "")
    try:
        return kind(text)
    except ValueError:
        return None


def _slice_indices(files: list[str], volume: Volume) -> np.ndarray:
    """z index of each file in ``volume`` from ImagePositionPatient along the slice normal."""
    direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    normal = direction[:, 2]
    origin = float(np.dot(volume.origin, normal))
    indices = []
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ImagePositionPatient"])
        if "ImagePositionPatient" not in ds:
            raise InputError(path, "missing DICOM tag ImagePositionPatient (0020,0032)")
        position = np.asarray([float(v) for v in ds.ImagePositionPatient])
        indices.append(int(round((float(position @ normal) - origin) / volume.spacing[2])))
    indices = np.asarray(indices)
    if indices.min() < 0 or indices.max() >= volume.shape[0] or len(set(indices.tolist())) != len(files):
        raise InputError(os.path.dirname(files[0]),
                         "cannot map DICOM files to slices (duplicate or irregular positions)")
    return indices
