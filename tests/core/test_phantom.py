"""Synthetic PET-CT phantoms: determinism, geometry, ground truth, tissue statistics, files, demo case."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from autopaint_app.core import phantom as phantom_module
from autopaint_app.core.errors import OutputExistsError
from autopaint_app.core.io import read_volume
from autopaint_app.core.phantom import (HN_KINDS, LUNG_KINDS, PHANTOM_FILES, Tissue, ensure_demo_case,
                                        make_phantom, write_phantom)

SMALL = dict(in_plane=128, n_slices=32)          # 3.9 mm pixels, 9.4 mm (lung) / 7.5 mm (hn) slices
MEDIUM = dict(in_plane=160, n_slices=50)         # 3.1 mm pixels, 6 mm / 4.8 mm slices
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def lung_cases():
    return [make_phantom("lung", seed, **MEDIUM) for seed in SEEDS]


@pytest.fixture(scope="module")
def hn_cases():
    return [make_phantom("hn", seed, **MEDIUM) for seed in SEEDS]


def _pet_on_ct(p) -> np.ndarray:
    """PET resampled (linear) onto the CT grid, as a user would do: (z, y, x) SUV."""
    image = sitk.Resample(p.pet.to_sitk(), p.ct.to_sitk(), sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(image)


def _sampling(volume) -> tuple[float, float, float]:
    return tuple(volume.spacing[::-1])


@pytest.mark.parametrize("site", ["lung", "hn"])
def test_same_seed_gives_identical_arrays_and_other_seed_differs(site):
    a = make_phantom(site, 5, **SMALL)
    b = make_phantom(site, 5, **SMALL)
    c = make_phantom(site, 6, **SMALL)
    for name in ("ct", "pet", "label", "tissue"):
        assert np.array_equal(getattr(a, name).array, getattr(b, name).array), name
    assert a.tumours == b.tumours
    assert not np.array_equal(a.ct.array, c.ct.array)
    assert not np.array_equal(a.pet.array, c.pet.array)
    assert a.tumours != c.tumours


@pytest.mark.parametrize("site", ["lung", "hn"])
def test_healthy_twin_has_no_tumour_and_same_anatomy(site):
    sick = make_phantom(site, 4, **SMALL)
    healthy = make_phantom(site, 4, healthy=True, **SMALL)
    assert healthy.tumours == [] and healthy.label.array.sum() == 0
    assert 1 <= len(sick.tumours) <= 4 and sick.label.array.sum() > 0
    away = ~ndi.binary_dilation(sick.label.array > 0, iterations=2)
    same = np.mean(sick.ct.array[away] == healthy.ct.array[away])
    assert same > 0.999, same


def test_grids_dtypes_and_pet_on_its_own_coarser_shifted_grid():
    p = make_phantom("lung", 1, **SMALL)
    assert p.ct.array.dtype == np.int16 and p.pet.array.dtype == np.float32 and p.label.array.dtype == np.uint8
    assert p.label.same_grid(p.ct) and p.tissue.same_grid(p.ct)
    assert p.ct.shape == (32, 128, 128)
    assert p.ct.spacing == pytest.approx((500 / 128, 500 / 128, 300 / 32))
    assert p.pet.spacing[0] > p.ct.spacing[0] and p.pet.spacing[1] > p.ct.spacing[1]
    assert p.pet.spacing[2] == pytest.approx(p.ct.spacing[2])
    shift = np.subtract(p.pet.physical_bounds()[0] + p.pet.physical_bounds()[1],
                        p.ct.physical_bounds()[0] + p.ct.physical_bounds()[1]) / 2
    assert shift[:2] == pytest.approx((2.1, -1.7), abs=1e-6)       # centres differ by a few mm
    assert shift[2] == pytest.approx(0.0)
    pet_lo, pet_hi = p.pet.physical_bounds()
    ct_lo, ct_hi = p.ct.physical_bounds()
    assert np.all(pet_lo[:2] <= ct_lo[:2] + 1.0) and np.all(pet_hi[:2] >= ct_hi[:2] - 1.0)


def test_full_size_default_grid_and_generation_time():
    start = time.perf_counter()
    p = make_phantom("lung", 0)
    elapsed = time.perf_counter() - start
    print(f"full-size lung phantom {p.ct.shape}: {elapsed:.2f} s")
    assert p.ct.shape == (100, 512, 512)
    assert p.ct.spacing == pytest.approx((500 / 512, 500 / 512, 3.0))
    assert p.pet.spacing[:2] == pytest.approx((4.0, 4.0)) and p.pet.shape[0] == 100
    assert elapsed < 40.0                      # a few seconds on an idle machine; CI shares 2 cores


def test_label_components_match_tumour_specs(lung_cases, hn_cases):
    for p in lung_cases + hn_cases:
        labels, count = ndi.label(p.label.array, structure=np.ones((3, 3, 3)))
        assert count == len(p.tumours), (p.site, p.seed)
        assert set(np.unique(p.label.array)) <= {0, 1}
        voxel_ml = p.ct.voxel_volume_ml
        for spec in p.tumours:
            index = np.rint(_index_of(p.ct, spec.centre_mm)).astype(int)
            component = labels[tuple(index)]
            assert component > 0, f"{p.site} seed {p.seed}: centre of {spec.kind} is not labelled"
            voxels = int(np.sum(labels == component))
            assert voxels == spec.voxels
            assert spec.volume_ml == pytest.approx(voxels * voxel_ml, rel=1e-3)
            assert 7.0 <= spec.radius_mm <= 40.0
            equivalent_radius = (3 * voxels * voxel_ml * 1000 / (4 * np.pi)) ** (1 / 3)
            assert 0.4 * spec.radius_mm <= equivalent_radius <= 1.6 * spec.radius_mm, (spec, equivalent_radius)
            assert 3.0 <= spec.suv <= 15.0 and 30.0 <= spec.hu <= 50.0


def _index_of(volume, point_xyz) -> np.ndarray:
    """Continuous (z, y, x) index of a physical point (identity direction)."""
    xyz = (np.asarray(point_xyz) - np.asarray(volume.origin)) / np.asarray(volume.spacing)
    return xyz[::-1]


def test_tumour_counts_and_kinds_over_seeds(lung_cases, hn_cases):
    for p in lung_cases:
        assert 1 <= len(p.tumours) <= 4 and all(t.kind in LUNG_KINDS for t in p.tumours)
    for p in hn_cases:
        assert 1 <= len(p.tumours) <= 4 and all(t.kind in HN_KINDS for t in p.tumours)
        assert p.tumours[0].kind == "oropharynx"
    kinds = {t.kind for p in lung_cases for t in p.tumours}
    assert len(kinds) >= 3, kinds


def test_lung_tumours_lie_in_or_touch_the_air_filled_lung(lung_cases):
    for p in lung_cases:
        ct = p.ct.array
        air = ct < -400
        outside = ndi.label(air)[0]
        border = np.unique(np.concatenate([outside[:, 0].ravel(), outside[:, -1].ravel(),
                                           outside[:, :, 0].ravel(), outside[:, :, -1].ravel()]))
        lung_air = air & ~np.isin(outside, border[border > 0])     # air not connected to the outside
        distance = ndi.distance_transform_edt(~lung_air, sampling=_sampling(p.ct))
        labels, _ = ndi.label(p.label.array, structure=np.ones((3, 3, 3)))
        for spec in p.tumours:
            component = labels[tuple(np.rint(_index_of(p.ct, spec.centre_mm)).astype(int))] == labels
            closest = distance[component].min()
            assert closest <= 3.0 * max(p.ct.spacing[:2]), (spec.kind, closest)
            if spec.kind == "lung-parenchymal":
                ring = ndi.binary_dilation(component, iterations=1) & ~component
                assert np.mean(ct[ring] < -300) > 0.5, spec          # surrounded by lung: CT-visible


def test_hn_tumours_in_oropharynx_and_neck(hn_cases):
    for p in hn_cases:
        airway = p.tissue.array == Tissue.AIRWAY
        distance = ndi.distance_transform_edt(~airway, sampling=_sampling(p.ct))
        for spec in p.tumours:
            index = tuple(np.rint(_index_of(p.ct, spec.centre_mm)).astype(int))
            if spec.kind == "oropharynx":
                assert distance[index] <= 30.0
            else:
                assert abs(spec.centre_mm[0]) > 15.0                  # lateral neck


def test_tissue_statistics_ct(lung_cases):
    for p in lung_cases:
        tissue, ct = p.tissue.array, p.ct.array.astype(float)
        assert -900 <= ct[tissue == Tissue.LUNG].mean() <= -750
        assert ct[tissue == Tissue.AIR].mean() < -980
        liver = ndi.binary_erosion(tissue == Tissue.LIVER, iterations=2)
        expected = np.hypot(p.ct_noise_hu, 4.0)                    # noise and liver texture
        assert 0.7 * expected <= ct[liver].std() <= 1.4 * expected, (ct[liver].std(), expected)
        assert 10.0 <= p.ct_noise_hu <= 20.0
        assert 40 <= ct[liver].mean() <= 75
        bone = tissue == Tissue.CORTICAL_BONE
        assert 300 <= np.median(ct[bone]) <= 900


def test_tissue_statistics_pet(lung_cases, hn_cases):
    for p in lung_cases:
        tissue, pet = p.tissue.array, _pet_on_ct(p)
        sampling = _sampling(p.ct)
        depth = {t: ndi.distance_transform_edt(tissue == t, sampling=sampling) for t in (Tissue.LIVER,)}
        liver_core = depth[Tissue.LIVER] > 12.0
        assert 1.8 <= pet[liver_core].mean() <= 2.6
        far_from_heart = ndi.distance_transform_edt(tissue != Tissue.MYOCARDIUM, sampling=sampling) > 15.0
        blood_core = (ndi.distance_transform_edt(tissue == Tissue.BLOOD, sampling=sampling) > 7.0) & far_from_heart
        assert 1.3 <= pet[blood_core].mean() <= 2.2
        lung_core = ndi.distance_transform_edt(tissue == Tissue.LUNG, sampling=sampling) > 15.0
        assert 0.3 <= pet[lung_core].mean() <= 0.8
        assert p.pet.array.min() >= 0.0
        for spec, component in _components(p):
            assert pet[component].max() >= max(2.5, 0.35 * spec.suv), spec
    for p in hn_cases:
        tissue, pet = p.tissue.array, _pet_on_ct(p)
        glands = np.isin(tissue, [Tissue.PAROTID, Tissue.SUBMANDIBULAR, Tissue.TONSIL])
        muscle = ndi.binary_erosion(tissue == Tissue.MUSCLE, iterations=2)
        assert pet[glands].mean() > pet[muscle].mean() + 0.5


def _components(p):
    labels, _ = ndi.label(p.label.array, structure=np.ones((3, 3, 3)))
    for spec in p.tumours:
        index = tuple(np.rint(_index_of(p.ct, spec.centre_mm)).astype(int))
        yield spec, labels == labels[index]


def test_pet_noise_is_scaled_to_the_signal(lung_cases):
    p = lung_cases[0]
    pet = p.pet.array
    liver_like = pet[(pet > 1.9) & (pet < 2.5)]
    assert liver_like.size > 50
    high_noise = np.diff(pet, axis=2)
    low = pet[:, :, 1:] < 0.05
    assert np.abs(high_noise[low]).mean() < np.abs(high_noise[pet[:, :, 1:] > 1.5]).mean()


def test_pet_without_counting_noise_is_the_same_phantoms_smooth_truth():
    noisy = make_phantom("lung", 4, healthy=True, **SMALL)
    clean = make_phantom("lung", 4, healthy=True, pet_noise=False, **SMALL)
    assert np.array_equal(noisy.ct.array, clean.ct.array)  # only the PET changes
    assert clean.pet.array.shape == noisy.pet.array.shape and clean.pet.origin == noisy.pet.origin
    noise = noisy.pet.array - clean.pet.array
    body = clean.pet.array > 1.0
    assert abs(float(noise[body].mean())) < 0.05 < float(noise[body].std())  # zero-mean noise was added
    # what was removed is the counting noise: variance = gain x signal, gain drawn in [0.02, 0.04]
    gain = float((noise[body] ** 2).mean() / clean.pet.array[body].mean())
    assert 0.015 < gain < 0.05, gain


def test_write_and_read_back_exactly(tmp_path):
    p = make_phantom("hn", 2, **SMALL)
    out = write_phantom(p, tmp_path / "case")
    for name, volume in zip(PHANTOM_FILES, (p.ct, p.pet, p.label)):
        back = read_volume(out / name, as_float=name == "pet.nii.gz")
        assert np.array_equal(back.array, volume.array), name
        assert back.array.dtype == volume.array.dtype
        assert back.same_grid(volume, tolerance_mm=1e-4), name
        assert back.spacing == pytest.approx(volume.spacing, abs=1e-5)
    described = json.loads((out / "phantom.json").read_text())
    assert described["seed"] == 2 and len(described["tumours"]) == len(p.tumours)
    with pytest.raises(OutputExistsError, match="ct.nii.gz"):
        write_phantom(p, out)
    write_phantom(p, out, overwrite=True)
    assert not [f for f in out.iterdir() if f.name.startswith(".")]     # no temporary files left


def test_demo_case_generates_deterministically(tmp_path):
    first = ensure_demo_case(tmp_path / "a")
    second = ensure_demo_case(tmp_path / "b")
    spec = json.loads((first / "phantom.json").read_text())
    assert [t["kind"] for t in spec["tumours"]] == ["lung-parenchymal", "juxta-mediastinal"]
    for name in PHANTOM_FILES:
        a, b = read_volume(first / name), read_volume(second / name)
        assert a.array.tobytes() == b.array.tobytes(), name
    label = read_volume(first / "label.nii.gz")
    assert ndi.label(label.array, structure=np.ones((3, 3, 3)))[1] == 2
    assert label.shape == (48, 256, 256) and label.spacing[0] == pytest.approx(1.6)
    stamp = (first / "ct.nii.gz").stat().st_mtime_ns
    assert ensure_demo_case(first) == first and (first / "ct.nii.gz").stat().st_mtime_ns == stamp


def test_demo_folder_falls_back_to_user_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(phantom_module.os, "access", lambda *_: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert phantom_module._demo_folder() == tmp_path / "autopaint" / "demo_case"
    monkeypatch.undo()
    assert phantom_module._demo_folder().name == "demo_case"


@pytest.mark.parametrize("kwargs, message", [
    (dict(site="liver", seed=0), "unknown phantom site"),
    (dict(site="lung", seed=0, tumour_kinds=("oropharynx",)), "tumour kinds"),
    (dict(site="lung", seed=0, in_plane=64, pixel_mm=2.0), "too small"),
    (dict(site="hn", seed=-1, **SMALL), "seed"),
])
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_phantom(**kwargs)
