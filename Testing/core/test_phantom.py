"""Synthetic studies: geometry, anatomy, contrast, lesions, levels, files and the CLI."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from u2adcore.cli.main import main
from u2adcore.config import SEGMENTS, PhantomConfig
from u2adcore.data.manifest import read_manifest
from u2adcore.data.phantom import make_phantom, write_phantom, write_phantom_set
from u2adcore.errors import InputError


def canonical(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.DICOMOrient(img, "PIL"))


def physical_z(img: sitk.Image, mask: np.ndarray) -> np.ndarray:
    """LPS z (mm) of the nonzero voxels of a SimpleITK-order array on `img`'s grid."""
    kji = np.argwhere(mask)
    direction = np.asarray(img.GetDirection()).reshape(3, 3)
    return img.GetOrigin()[2] + (kji[:, ::-1] * np.asarray(img.GetSpacing())) @ direction[2]


def ring_and_cord(image: np.ndarray, cord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid-sagittal CSF band (1-3 px outside the cord) and cord pixels, as in docs/DATA.md."""
    mid = int(np.argmax(cord.sum(axis=(1, 2))))
    c = cord[mid] > 0
    ring = ndi.binary_dilation(c, iterations=3) & ~ndi.binary_dilation(c, iterations=1)
    return image[mid][ring], image[mid][c]


@pytest.fixture(scope="module")
def healthy():
    return make_phantom(11)


@pytest.fixture(scope="module")
def lesioned():
    return make_phantom(12, n_lesions=3)


def test_geometry_matches_the_real_files_orientation(healthy):
    cfg = PhantomConfig()
    img = healthy.image
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection()) == "PSR"
    assert img.GetPixelID() == sitk.sitkFloat32
    assert img.GetSpacing() == pytest.approx((cfg.pixel_mm, cfg.pixel_mm, cfg.slice_mm))
    assert img.GetSize()[2] == cfg.n_slices
    assert img.GetSize()[1] * cfg.pixel_mm == pytest.approx(cfg.fov_si_mm, abs=cfg.pixel_mm)
    for mask in (healthy.cord, healthy.discs, healthy.lesion):
        assert mask.GetPixelID() == sitk.sitkUInt8
        assert mask.GetSize() == img.GetSize() and mask.GetOrigin() == img.GetOrigin()
        assert mask.GetDirection() == img.GetDirection()
    assert not sitk.GetArrayViewFromImage(healthy.lesion).any() and healthy.patient_label == 0


def test_other_orientation_is_the_same_study_in_physical_space(healthy):
    lps = make_phantom(11, cfg=PhantomConfig(orientation="LPS"))
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(lps.image.GetDirection()) == "LPS"
    np.testing.assert_array_equal(canonical(lps.image), canonical(healthy.image))
    assert sitk.DICOMOrient(lps.image, "PIL").GetOrigin() == pytest.approx(sitk.DICOMOrient(healthy.image, "PIL").GetOrigin())


def test_cord_is_continuous_inside_the_image_and_narrows_off_midline(healthy):
    cord = canonical(healthy.cord)
    rows = np.flatnonzero(cord.any(axis=(0, 2)))
    assert rows[0] == 0 and rows[-1] == cord.shape[1] - 1  # brainstem to thoracic cord, no gap
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
    area = cord.sum(axis=(1, 2))
    assert area[0] == 0 and area[-1] == 0  # the outer sagittal slices miss the cord
    mid = int(np.argmax(area))
    assert abs(mid - (cord.shape[0] - 1) / 2) <= 1
    width_mm = cord[mid].sum(axis=1)[rows] * PhantomConfig.pixel_mm
    assert 5.5 <= float(np.median(width_mm)) <= 10.0


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_csf_is_brighter_than_cord_in_a_realistic_ratio(seed):
    p = make_phantom(seed)
    csf, cord = ring_and_cord(canonical(p.image), canonical(p.cord))
    assert 1.5 <= csf.mean() / cord.mean() <= 3.2


def test_disc_labels_run_superior_to_inferior_at_the_cord(healthy):
    discs = sitk.GetArrayFromImage(healthy.discs)
    cord = sitk.GetArrayFromImage(healthy.cord)
    values, counts = np.unique(discs[discs > 0], return_counts=True)
    assert values.tolist() == list(range(2, 10)) and (counts == 1).all()
    z = [float(physical_z(healthy.discs, discs == k)[0]) for k in range(2, 10)]
    assert all(upper > lower for upper, lower in zip(z, z[1:]))
    assert 8 * 13.0 < z[0] - z[-1] < 8 * 25.0  # C1-C2 to T1-T2: seven vertebrae and discs
    assert all(cord[discs == k][0] == 1 for k in range(2, 10))


def test_lesions_are_inside_the_cord_brighter_than_cord_darker_than_csf(lesioned):
    image, cord, lesion = canonical(lesioned.image), canonical(lesioned.cord), canonical(lesioned.lesion)
    assert lesioned.patient_label == 1 and len(lesioned.lesions) == 3
    assert lesion.any() and not (lesion & (1 - cord)).any()
    mid = int(np.argmax(cord.sum(axis=(1, 2))))
    assert lesion[mid].any()  # visible on the mid-sagittal slice
    csf, _ = ring_and_cord(image, cord)
    normal = image[(cord > 0) & (lesion == 0)]
    assert normal.mean() < image[lesion > 0].mean() < csf.mean()


def test_lesion_segments_agree_with_body_centres_in_physical_space(lesioned):
    z = physical_z(lesioned.lesion, sitk.GetArrayFromImage(lesioned.lesion) > 0)
    expected = []
    for seg in SEGMENTS:
        upper, lower = (lesioned.body_centres[name][2] for name in seg.split("-"))
        if z.min() <= upper + 1e-6 and z.max() >= lower - 1e-6:
            expected.append(seg)
    # Lesions are separate; their union of segments is within the span-based expectation.
    assert set(lesioned.lesion_segments) <= set(expected) and lesioned.lesion_segments
    assert lesioned.segment_labels == {s: int(s in lesioned.lesion_segments) for s in SEGMENTS}
    levels = lesioned.to_study().levels
    for seg in lesioned.lesion_segments:
        upper, lower = levels.segment_points(seg)
        assert np.any((z <= upper[2] + 1e-6) & (z >= lower[2] - 1e-6))


def test_seed_reproduces_and_another_seed_differs(healthy):
    again = make_phantom(11)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(again.image), sitk.GetArrayViewFromImage(healthy.image))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(again.cord), sitk.GetArrayViewFromImage(healthy.cord))
    other = make_phantom(99)
    assert not np.array_equal(sitk.GetArrayViewFromImage(other.cord), sitk.GetArrayViewFromImage(healthy.cord))
    coarse = make_phantom(11, cfg=PhantomConfig(n_slices=5, pixel_mm=1.2))  # same spine at another resolution
    for name, point in healthy.body_centres.items():
        np.testing.assert_allclose(coarse.body_centres[name], point, atol=0.5)


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="'XYZ' is not an orientation"):
        make_phantom(0, cfg=PhantomConfig(orientation="XYZ"))
    with pytest.raises(InputError, match="fov_si_mm: 120 mm is too short to hold C1-C2"):
        make_phantom(0, cfg=PhantomConfig(fov_si_mm=120.0))
    with pytest.raises(InputError, match="n_lesions: must be >= 0"):
        make_phantom(0, n_lesions=-1)


def test_write_phantom_round_trips_geometry(lesioned, tmp_path):
    paths = write_phantom(lesioned, tmp_path, "case")
    assert sorted(paths) == ["cord", "discs", "image", "lesion"]
    for what, path in paths.items():
        assert path.name == f"case_{what}.nii.gz"
        back = sitk.ReadImage(str(path))
        ref = getattr(lesioned, what)
        assert back.GetSize() == ref.GetSize()
        assert back.GetOrigin() == pytest.approx(ref.GetOrigin(), abs=1e-4)
        assert back.GetDirection() == pytest.approx(ref.GetDirection(), abs=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(ref))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_phantom_set_manifest_loads_with_levels(tmp_path):
    cfg = PhantomConfig(n_slices=9, pixel_mm=1.2, fov_ap_mm=130.0)
    manifest = write_phantom_set(tmp_path / "set", 4, seed=5, lesion_fraction=0.5, cfg=cfg)
    entries = read_manifest(manifest)
    assert [e.label for e in entries].count(1) == 2 and [e.label for e in entries].count(0) == 2
    for e in entries:
        assert e.levels_kind == "discs" and e.lesion is not None
        assert bool(e.segments) == bool(e.label)
    study = entries[[e.label for e in entries].index(1)].load()
    assert study.levels is not None and study.levels.segment_points("C2-C3") is not None
    assert study.lesion is not None and sitk.GetArrayViewFromImage(study.lesion).any()
    with pytest.raises(InputError, match=r"lesion_fraction: must lie in \[0, 1\], got 1.5"):
        write_phantom_set(tmp_path / "bad", 2, seed=0, lesion_fraction=1.5)


def test_cli_writes_a_set_and_reports_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--progress", "jsonl", "phantom", "--out", str(out), "--n", "2", "--lesions", "1", "--n-slices", "9", "--pixel-mm", "1.2"]
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"event": "done"' in last and "manifest.csv" in last
    entries = read_manifest(out / "manifest.csv")
    assert [e.label for e in entries] == [1, 1]
    assert sitk.ReadImage(str(entries[0].image)).GetSize()[2] == 9
    assert main(["--progress", "none", "phantom", "--out", str(out), "--n", "1"]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert main(["--progress", "none", "phantom", "--out", str(tmp_path / "x"), "--lesions", "-1"]) == 2
    assert "must be >= 0" in capsys.readouterr().err


def test_lesion_count_setting_is_honoured():
    cfg = dataclasses.replace(PhantomConfig(), lesion_length_mm=(8.0, 8.0))
    p = make_phantom(31, n_lesions=1, cfg=cfg)
    assert len(p.lesions) == 1 and p.lesions[0].size_mm[0] == pytest.approx(8.0)
