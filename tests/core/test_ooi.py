"""Organ-of-interest masks: synthetic chest phantoms, the two real chest CTs, the real HN case."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume, read_volume, write_mask
from autopaint_app.core.ooi import (OrganNotFoundWarning, body_ooi, compute_ooi, head_neck_box, head_neck_ooi, load_user_ooi,
                                    lung_ooi, lung_ooi_from_pet)
from autopaint_app.core.phantom import HN_KINDS, LUNG_KINDS, make_phantom
from autopaint_app.core.preprocess import resample_to_reference
from autopaint_app.core.suv import read_pet_suv

# ------------------------------------------------------------------------------ synthetic chest

FOV_MM, HEIGHT_MM = 320.0, 200.0
LUNG_CENTRES_X = (-70.0, 70.0)  # LPS: negative x = patient right
LUNG_SEMI_AXES = (55.0, 70.0, 90.0)  # (x, y, z) mm
PLEURAL_TUMOUR = ((-117.0, 0.0, 0.0), 15.0)  # centre (x, y, z) mm, radius: crosses the lateral lung edge
MEDIASTINAL_TUMOUR = ((24.0, 20.0, -30.0), 14.0)  # crosses the medial edge of the left lung (x ~ 20.5 mm there)


def chest_phantom(pixel_mm: float, slice_mm: float, lungs: bool = True) -> tuple[Volume, dict]:
    """Box phantom: soft-tissue body ellipse, two air lungs, trachea + main bronchi, two tumours.

    Returns the CT (HU, (z, y, x)) and bool masks of its parts, built from physical coordinates so
    that every spacing gives the same anatomy.
    """
    n_xy, n_z = int(round(FOV_MM / pixel_mm)), int(round(HEIGHT_MM / slice_mm))
    origin = (-FOV_MM / 2, -FOV_MM / 2, -HEIGHT_MM / 2)
    z, y, x = np.meshgrid(*(o + s * np.arange(n) for o, s, n in
                            ((origin[2], slice_mm, n_z), (origin[1], pixel_mm, n_xy), (origin[0], pixel_mm, n_xy))),
                          indexing="ij", sparse=True)
    body = (x / 150.0) ** 2 + (y / 100.0) ** 2 <= 1.0
    body = np.broadcast_to(body, (n_z, n_xy, n_xy))
    lung = np.zeros(body.shape, bool)
    for cx in LUNG_CENTRES_X:
        lung |= ((x - cx) / LUNG_SEMI_AXES[0]) ** 2 + (y / LUNG_SEMI_AXES[1]) ** 2 + (z / LUNG_SEMI_AXES[2]) ** 2 <= 1
    trachea = np.broadcast_to((x ** 2 + (y + 30) ** 2 <= 9.0 ** 2) & (z >= 40), body.shape)
    airways = trachea.copy()
    for side in (-1, 1):  # main bronchi from the carina (0, -30, 40) into each lung's hilum
        t = np.clip(((x - 0) * side * 45 + (y + 30) * 20 + (z - 40) * -20) / (45 ** 2 + 20 ** 2 + 20 ** 2), 0, 1)
        airways |= (x - side * 45 * t) ** 2 + (y + 30 - 20 * t) ** 2 + (z - 40 + 20 * t) ** 2 <= 6.0 ** 2
    tumours = {name: ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r ** 2)
               for name, (c, r) in (("pleural", PLEURAL_TUMOUR), ("mediastinal", MEDIASTINAL_TUMOUR))}
    hu = np.full(body.shape, -1000, np.int16)
    hu[body] = 40
    if lungs:
        hu[lung] = -850
        hu[airways] = -1000
    for mask in tumours.values():
        hu[mask] = 40
    ct = Volume(hu, (pixel_mm, pixel_mm, slice_mm), origin, source="chest-phantom")
    return ct, {"body": body, "lung": lung & ~airways, "trachea": trachea & ~lung, **tumours}


def coverage(mask: np.ndarray, target: np.ndarray) -> float:
    return float((mask & target).sum() / target.sum())


@pytest.mark.parametrize("pixel_mm, slice_mm", [(0.7, 2.5), (2.0, 5.0)])
def test_synthetic_chest_removes_trachea_and_keeps_juxta_pleural_and_mediastinal_tumours(pixel_mm, slice_mm):
    ct, parts = chest_phantom(pixel_mm, slice_mm)
    fields = lung_ooi(ct, dilation_mm=0)
    ooi = lung_ooi(ct)
    # The trachea (above the carina) is gone before dilation, in every slice; the short main
    # bronchi of this phantom enter the lungs right below the carina and may stay with them.
    assert coverage(fields, parts["trachea"]) < 0.01
    top_slab = np.s_[int(np.ceil((92.0 - ct.origin[2]) / slice_mm)):]  # z > 90 mm, above the lungs: trachea only
    assert parts["trachea"][top_slab].any() and not fields[top_slab].any()
    assert not (ooi & parts["trachea"])[top_slab].any()  # the apices' dilation does not reach it
    # Soft-tissue tumours denting the lung from the chest wall or the mediastinum stay in the field.
    # Without the per-slice hull their in-lung part would be lost entirely (soft tissue is not air);
    # the hull keeps most of it (a chord cuts off a thin cap of the curved lung edge), the final
    # dilation the rest and the part outside the lung.
    for name in ("pleural", "mediastinal"):
        assert coverage(fields, parts[name] & parts["lung"]) >= 0.85, name
        assert coverage(ooi, parts[name]) >= 0.95, name
    # Lung volume right (convex ellipsoids: hull adds nothing), dilation adds, outside air never in.
    lung_ml = parts["lung"].sum() * ct.voxel_volume_ml
    assert fields.sum() * ct.voxel_volume_ml == pytest.approx(lung_ml, rel=0.12)
    assert ooi.sum() > 1.3 * fields.sum()
    assert not (ooi & ~parts["body"]).any()


def test_synthetic_chest_same_physical_size_at_any_spacing():
    litres = []
    for pixel_mm, slice_mm in [(0.57, 5.0), (0.98, 3.0), (2.0, 2.0)]:
        ct, _ = chest_phantom(pixel_mm, slice_mm)
        litres.append(lung_ooi(ct).sum() * ct.voxel_volume_ml / 1000)
    assert max(litres) / min(litres) < 1.08, litres


def test_ct_without_lungs_gives_empty_mask_and_warning():
    ct, _ = chest_phantom(2.0, 5.0, lungs=False)
    with pytest.warns(OrganNotFoundWarning, match="no lungs found"):
        mask = lung_ooi(ct)
    assert mask.shape == ct.shape and mask.dtype == bool and not mask.any()
    empty_scanner = ct.with_array(np.full(ct.shape, -1000, np.int16))
    with pytest.warns(OrganNotFoundWarning):
        assert not lung_ooi(empty_scanner).any()


# --------------------------------------------------------------------------------- real chest CT

def outside_air(ct: Volume) -> np.ndarray:
    """Air (< -500 HU) connected to the image border within its axial slice, shape (z, y, x)."""
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    labels, _ = ndi.label(ct.array < -500, structure=in_plane)
    border = np.unique(np.concatenate([labels[:, [0, -1], :].ravel(), labels[:, :, [0, -1]].ravel()]))
    return np.isin(labels, border[border > 0])


# A trachea voxel (z, y, x) in the top slice of each CT, found by inspection (HU about -1010).
TRACHEA_TOP_VOXEL = {"lung1": (47, 273, 251), "lung2": (60, 236, 256)}


@pytest.mark.parametrize("case", ["lung1", "lung2"])
def test_real_chest_ct_lung_ooi_covers_tumour(shared_data, case):
    ct = read_volume(shared_data / "lung_ct" / f"{case}_image.nrrd")
    tumour = read_volume(shared_data / "lung_ct" / f"{case}_label.nrrd").array == 1
    start = time.perf_counter()
    ooi = lung_ooi(ct)
    seconds = time.perf_counter() - start
    fields = lung_ooi(ct, dilation_mm=0)
    litres = ooi.sum() * ct.voxel_volume_ml / 1000
    print(f"\n{case}: lung OOI covers {100 * coverage(ooi, tumour):.1f} % of {tumour.sum()} tumour voxels "
          f"(undilated fields: {100 * coverage(fields, tumour):.1f} %), OOI {litres:.2f} l, {seconds:.2f} s")
    assert coverage(ooi, tumour) >= 0.95
    # lung1 covers 240 mm of chest, lung2 305 mm: a few litres, not the whole body.
    assert 2.0 <= litres <= 9.0
    soft_tissue = (ct.array > -200) & (ct.array < 200)
    assert coverage(ooi, soft_tissue) < 0.4
    assert coverage(ooi, outside_air(ct)) < 0.005
    z, y, x = TRACHEA_TOP_VOXEL[case]
    assert ct.array[z, y, x] < -900 and not fields[z, y, x]
    assert seconds < 20


# ------------------------------------------------------------------------------- head and neck

@pytest.fixture(scope="module")
def hn_case(shared_data):
    """The real HN CT, its whole-body PET (SUV, own grid) and the PET on the CT grid.

    Linear resampling: the OOI is coarse, and the B-spline (the pipeline's choice) takes ~20 s here.
    """
    folder = shared_data / "hn_petct_dicom" / "HN-CHUS-052"
    ct = read_volume(folder / "ct.nii.gz")
    pet = read_pet_suv(folder / "pet_dicom")
    return ct, pet, resample_to_reference(pet, ct, order=1)


def _airway_below_mandible(ct: Volume) -> np.ndarray:
    """Air (< -500 HU) within 25 mm of the body's left-right centre, z -320..-270 mm (the neck)."""
    z_mm = ct.origin[2] + ct.spacing[2] * np.arange(ct.shape[0])
    airway = np.zeros(ct.shape, bool)
    for k in np.flatnonzero((z_mm >= -320) & (z_mm <= -270)):
        body = ndi.binary_fill_holes(ndi.binary_opening(ct.array[k] > -320, iterations=3))
        body = body & (ndi.label(body)[0] == np.bincount(ndi.label(body)[0].ravel())[1:].argmax() + 1)
        centre_x = np.flatnonzero(body.any(axis=0)).mean()
        central = np.abs(np.arange(ct.shape[2]) - centre_x) * ct.spacing[0] <= 25
        airway[k] = (ct.array[k] < -500) & body & central[None, :]
    return airway


@pytest.mark.parametrize("inputs", ["ct", "ct+pet", "pet"])
def test_real_head_neck_box_covers_neck_between_skull_base_and_shoulders(hn_case, inputs):
    ct, _, pet_on_ct = hn_case
    kwargs = {"ct": ct if "ct" in inputs.split("+") else None, "pet": pet_on_ct if "pet" in inputs else None}
    start = time.perf_counter()
    box = head_neck_box(**kwargs)
    seconds = time.perf_counter() - start
    print(f"\nHN-CHUS-052 ({inputs}): {box}, {seconds:.2f} s")
    # Neck between the shoulders (body widens below z ~ -335 mm) and the skull base; brain and chest out.
    assert -380 <= box.z_mm[0] <= -340 and -240 <= box.z_mm[1] <= -160
    assert box.cues == {"top": "skull" if inputs == "ct" else "brain uptake", "bottom": "shoulders"}
    airway = _airway_below_mandible(ct)
    assert airway.sum() > 500 and coverage(box.to_mask(ct.shape), airway) == 1.0
    # Only the central part in-plane: the neck and face (150-260 mm wide), not the shoulders (~500 mm).
    assert 150 <= (box.x[1] - box.x[0]) * ct.spacing[0] <= 260 and 150 <= (box.y[1] - box.y[0]) * ct.spacing[1] <= 300
    assert seconds < 20


def test_real_head_neck_ooi_is_the_box_inside_the_body(hn_case):
    ct, _, pet_on_ct = hn_case
    start = time.perf_counter()
    ooi = head_neck_ooi(ct, pet_on_ct)
    seconds = time.perf_counter() - start
    box = head_neck_box(ct, pet_on_ct)
    print(f"\nHN-CHUS-052 head-and-neck OOI: {ooi.sum() * ct.voxel_volume_ml / 1000:.2f} l, {seconds:.2f} s")
    assert not (ooi & ~box.to_mask(ct.shape)).any()
    assert ooi.any(axis=(1, 2)).sum() == box.z[1] - box.z[0]
    assert coverage(ooi, _airway_below_mandible(ct)) >= 0.99
    assert (ooi & outside_air(ct)).sum() < 0.01 * ooi.sum()  # only the ~2 mm block edge at the skin
    assert 0.5 <= ooi.sum() * ct.voxel_volume_ml / 1000 <= 5.0
    assert seconds < 20


def test_pet_only_lung_fallback_is_the_chest_of_a_whole_body_pet(hn_case):
    ct, pet, _ = hn_case  # PET on its own 4 mm whole-body grid, z -1088..-72 mm
    chest = lung_ooi_from_pet(pet)
    z_mm = pet.origin[2] + pet.spacing[2] * np.flatnonzero(chest.any(axis=(1, 2)))
    litres = chest.sum() * pet.voxel_volume_ml / 1000
    print(f"\nPET-only chest region z {z_mm.min():.0f}..{z_mm.max():.0f} mm, {litres:.1f} l")
    assert -360 <= z_mm.max() <= -290 and -680 <= z_mm.min() <= -580
    apices = lung_ooi(ct, dilation_mm=0).astype(np.float32)  # the CT (head and neck) holds the lung apices
    apices_on_pet = resample_to_reference(ct.with_array(apices), pet, order=1).array > 0.5
    assert apices_on_pet.sum() > 1000 and coverage(chest, apices_on_pet) >= 0.95


# ------------------------------------------------------------------------- core.phantom PET-CT cases

@pytest.mark.parametrize("site, seed", [("lung", 3), ("hn", 1)])
def test_ooi_covers_phantom_tumours(site, seed):
    kinds = LUNG_KINDS if site == "lung" else HN_KINDS  # every kind: juxta-pleural, juxta-mediastinal, nodes...
    case = make_phantom(site, seed, in_plane=256, tumour_kinds=tuple(kinds))
    tumour = case.label.array > 0
    pet_on_ct = resample_to_reference(case.pet, case.ct, order=1)
    ooi = compute_ooi(site, ct=case.ct, pet=pet_on_ct)
    pet_only = compute_ooi(site, pet=pet_on_ct)
    print(f"\nphantom {site} seed {seed} ({', '.join(kinds)}): OOI covers {100 * coverage(ooi, tumour):.1f} % "
          f"of the tumour voxels (PET-only fallback {100 * coverage(pet_only, tumour):.1f} %), "
          f"OOI {ooi.sum() * case.ct.voxel_volume_ml / 1000:.2f} l")
    assert coverage(ooi, tumour) >= 0.95 and coverage(pet_only, tumour) >= 0.95
    assert ooi.mean() < 0.35  # of the whole field of view


# -------------------------------------------------------------------------------- user masks, dispatch

def test_load_user_ooi_and_its_errors(tmp_path):
    ct, parts = chest_phantom(4.0, 10.0)
    good = write_mask(parts["lung"], ct, tmp_path / "ooi.nii.gz")
    assert np.array_equal(load_user_ooi(good, ct), parts["lung"])
    labels = write_mask(parts["lung"].astype(np.uint8) * 3, ct, tmp_path / "labels.nii.gz")
    assert np.array_equal(load_user_ooi(labels, ct), parts["lung"])

    shifted = Volume(parts["lung"].astype(np.uint8), ct.spacing, (ct.origin[0] + 5, *ct.origin[1:]))
    cases = {
        "size": Volume(parts["lung"][:-1].astype(np.uint8), ct.spacing, ct.origin),
        "spacing": Volume(parts["lung"].astype(np.uint8), (4.0, 4.0, 9.0), ct.origin),
        "origin": shifted,
    }
    for what, volume in cases.items():
        path = write_mask(volume.array, volume, tmp_path / f"{what}.nii.gz")
        with pytest.raises(InputError, match=f"does not match the image grid: .*{what}") as info:
            load_user_ooi(path, ct)
        assert str(path) in str(info.value)
    empty = write_mask(np.zeros(ct.shape, np.uint8), ct, tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="empty"):
        load_user_ooi(empty, ct)
    with pytest.raises(InputError, match="not found"):
        load_user_ooi(tmp_path / "missing.nii.gz", ct)


def test_compute_ooi_dispatch(tmp_path):
    ct, parts = chest_phantom(2.0, 5.0)
    assert np.array_equal(compute_ooi("lung", ct=ct), lung_ooi(ct))
    user = write_mask(parts["pleural"], ct, tmp_path / "user.nii.gz")
    assert np.array_equal(compute_ooi("lung", ct=ct, user_mask_path=user), parts["pleural"])
    pet = ct.with_array(np.where(parts["body"], np.where(parts["lung"], 0.4, 1.0), 0.0).astype(np.float32))
    pet.array[parts["pleural"]] = 8.0
    chest = compute_ooi("lung", pet=pet)  # PET only: chest region from the PET body contour
    assert coverage(chest, parts["pleural"] | parts["mediastinal"]) >= 0.95
    near_body = ndi.binary_dilation(parts["body"], structure=np.ones((1, 3, 3), bool), iterations=4)  # 8 mm
    assert not (chest & ~near_body).any()  # the PET body contour is smoothed by 4 mm
    neck = compute_ooi("hn", ct=ct, pet=pet)
    assert neck.dtype == bool and neck.shape == ct.shape and neck.any()
    off_grid = Volume(pet.array, pet.spacing, (pet.origin[0] + 2.0, *pet.origin[1:]), source="pet.nii.gz")
    with pytest.raises(InputError, match="pet.nii.gz: PET is not on the CT grid"):
        compute_ooi("lung", ct=ct, pet=off_grid)
    with pytest.raises(ValueError, match="unknown site"):
        compute_ooi("liver", ct=ct)
    with pytest.raises(ValueError, match="needs a CT, a PET or both"):
        compute_ooi("hn")


def test_lung_ooi_spans_every_lung_slice_of_a_thin_chest_wall_phantom():
    """Regression: opening before filling broke thin chest walls and lost whole lung slices (seed 7)."""
    from autopaint_app.core.phantom_tissues import Tissue

    phantom = make_phantom("lung", 7, healthy=True, in_plane=256)
    lung_slices = np.flatnonzero((phantom.tissue.array == int(Tissue.LUNG)).any(axis=(1, 2)))
    ooi_slices = np.flatnonzero(lung_ooi(phantom.ct).any(axis=(1, 2)))
    missed = np.setdiff1d(lung_slices, ooi_slices)
    print(f"phantom lung seed 7: {lung_slices.size} lung slices, {missed.size} outside the OOI")
    assert missed.size <= 0.05 * lung_slices.size


# ------------------------------------------------------------------------------ whole body


def two_legs_phantom(pixel_mm: float = 1.0, slice_mm: float = 3.0) -> tuple[Volume, dict]:
    """Two thighs (ellipses of muscle with a bone inside, one with a tumour) and a thin cable, in air."""
    n_xy, n_z = int(round(240 / pixel_mm)), int(round(60 / slice_mm))
    y, x = np.mgrid[0:n_xy, 0:n_xy] * pixel_mm
    legs = {side: ((x - cx) / 50.0) ** 2 + ((y - 120.0) / 60.0) ** 2 <= 1.0 for side, cx in (("right", 65.0), ("left", 175.0))}
    cable = (np.abs(y - 20.0) <= 1.0) & (np.abs(x - 120.0) <= 30.0)  # 2 mm thick: lost in the opening
    hu = np.full((n_z, n_xy, n_xy), -1000.0, np.float32)
    for leg in legs.values():
        hu[:, leg] = 50.0
    hu[:, cable] = 200.0
    tumour = np.broadcast_to(((x - 175.0) ** 2 + (y - 150.0) ** 2 <= 20.0 ** 2), hu.shape)
    hu[tumour] = 30.0
    ct = Volume(hu, (pixel_mm, pixel_mm, slice_mm), (0.0, 0.0, 0.0), source="legs-phantom")
    return ct, {name: np.broadcast_to(mask, hu.shape) for name, mask in {**legs, "cable": cable, "tumour": tumour}.items()}


def test_body_ooi_keeps_every_body_part_and_drops_specks():
    ct, parts = two_legs_phantom()
    mask = body_ooi(ct, edge_margin_mm=0.0)
    assert coverage(mask, parts["right"]) >= 0.98 and coverage(mask, parts["left"]) >= 0.98  # not the largest only
    assert coverage(mask, parts["tumour"]) == 1.0
    assert not (mask & parts["cable"]).any()
    assert not (mask & ~ndi.binary_dilation(parts["right"] | parts["left"], iterations=3)).any()


def test_body_ooi_stays_a_margin_inside_the_field_of_view():
    """A volume cropped around a lesion: the body reaches the image edge, the OOI stops short of it."""
    ct, parts = two_legs_phantom(pixel_mm=2.0)
    cropped = Volume(ct.array[:, 45:75, 20:50].copy(), ct.spacing, ct.origin, source="cropped")  # inside the right leg
    full = body_ooi(cropped, edge_margin_mm=0.0)
    assert full.all()  # the body fills the crop, up to every edge
    mask = body_ooi(cropped, edge_margin_mm=15.0)
    margin_px = 8  # ceil(15 mm / 2 mm)
    assert np.array_equal(mask, _inner_box(cropped.shape, margin_px))


def _inner_box(shape, margin):
    box = np.zeros(shape, bool)
    box[:, margin : shape[1] - margin, margin : shape[2] - margin] = True
    return box


def test_body_ooi_from_pet_alone_and_when_nothing_is_there():
    ct, parts = two_legs_phantom(pixel_mm=4.0)
    body = parts["right"] | parts["left"]
    pet = ct.with_array(np.where(body, 1.0, 0.0).astype(np.float32))
    pet.array[parts["tumour"]] = 9.0
    mask = body_ooi(pet=pet, edge_margin_mm=0.0)
    assert coverage(mask, parts["right"]) >= 0.9 and coverage(mask, parts["left"]) >= 0.9
    assert coverage(mask, parts["tumour"]) == 1.0
    empty = ct.with_array(np.full(ct.shape, -1000.0, np.float32))
    with pytest.warns(OrganNotFoundWarning, match="no body found at least 15 mm inside the field of view"):
        assert not body_ooi(empty, edge_margin_mm=15.0).any()
    with pytest.raises(ValueError, match="needs a CT or a PET"):
        body_ooi()


def test_compute_ooi_body_region_uses_the_sites_circle_radius_as_edge_margin(tmp_path):
    from autopaint_app.core.presets import get_preset
    from autopaint_app.core.preprocess import REFERENCE_PIXEL_MM

    ct, parts = two_legs_phantom()
    for site in ("lung", "hn"):
        margin = get_preset(site).circle_radius_px * REFERENCE_PIXEL_MM  # 26.4 mm lung, 14.6 mm head and neck
        assert np.array_equal(compute_ooi(site, ct=ct, region="body"), body_ooi(ct, edge_margin_mm=margin))
    user = write_mask(parts["tumour"], ct, tmp_path / "user.nii.gz")
    assert np.array_equal(compute_ooi("hn", ct=ct, user_mask_path=user, region="body"), parts["tumour"])  # user wins
    with pytest.raises(ValueError, match="unknown organ-of-interest region 'liver'; choose one of site, body"):
        compute_ooi("hn", ct=ct, region="liver")


def test_real_sarcoma_body_ooi_covers_the_gtv_and_not_the_edge(shared_data):
    """IBSI STS PET/CT crops (5 cm around the GTV): the neck box misses a thigh, the body OOI holds the GTV."""
    from autopaint_app.core.case import find_cases, load_case

    for case_id in ("STS_001", "STS_008"):
        case = load_case(find_cases(shared_data / "sts_petct" / case_id)[0], pet_suv=True)
        gtv = case.label.array > 0
        mask = compute_ooi("hn", ct=case.ct, region="body")
        print(f"{case_id}: body OOI {mask.mean():.2f} of the FOV, GTV covered {coverage(mask, gtv):.3f}")
        assert coverage(mask, gtv) == 1.0
        assert not mask[:, :10, :].any() and not mask[:, :, -10:].any()  # 14.6 mm at 0.98 mm pixels: 15 px
        pet_mask = compute_ooi("hn", pet=case.pet, region="body")  # PET alone, on its 4-5 mm grid
        pet_gtv = read_volume(shared_data / "sts_petct" / case_id / "PET_mask.nii.gz").array > 0
        assert coverage(pet_mask, pet_gtv) == 1.0


def test_an_empty_site_organ_suggests_the_whole_body(tmp_path):
    from autopaint_app.core.case import case_from_paths, load_case
    from autopaint_app.core.io import write_volume
    from autopaint_app.core.segment import case_ooi

    ct, parts = two_legs_phantom(pixel_mm=2.0)
    path = write_volume(ct, tmp_path / "legs.nii.gz")
    case = load_case(case_from_paths(ct=path))
    with pytest.raises(InputError, match="no lung organ of interest found in this image; pass --ooi MASK or "
                                         "--ooi-region body"):
        case_ooi(case, "lung", None, None, [])
    body = case_ooi(case, "lung", None, None, [], region="body")
    assert coverage(body, parts["tumour"]) == 1.0
