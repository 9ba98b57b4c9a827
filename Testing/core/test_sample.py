"""The real sample shipped with the package (resources/sample/): intact files on one grid, six
disc labels giving six scored segments, the pseudo-lesion where sample.json says, and (with
../shared) the as-is image equal to its crop of errsm_21 with the same analysed slice."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.config import SEGMENTS, PreprocessConfig
from u2adcore.io.study import load_study
from u2adcore.levels.levels import read_levels
from u2adcore.resources import SAMPLE_FILES, sample_metadata, sample_paths
from u2adcore.volume.preprocess import prepare_slices

NIFTI = ("image", "image_lesion", "lesion", "cord", "discs")


@pytest.fixture(scope="module")
def paths():
    return sample_paths()


@pytest.fixture(scope="module")
def images(paths):
    return {role: sitk.ReadImage(str(paths[role])) for role in NIFTI}


def test_every_file_is_there_small_and_matches_its_checksum(paths):
    meta = sample_metadata()
    for role, path in paths.items():
        assert path.is_file(), path
        if role in meta["sha256"]:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"][role], path.name
    assert set(meta["sha256"]) == set(SAMPLE_FILES) - {"meta", "readme", "licence"}
    assert sum(p.stat().st_size for p in paths.values()) < 2_000_000
    text = paths["readme"].read_text(encoding="utf-8")
    assert "2f897401d571893a3a730a70def06760bb862f3e" in text and "MIT" in text and f"rng({meta['pseudo_lesion']['seed']})" in text
    assert "MIT License" in paths["licence"].read_text(encoding="utf-8")


def test_all_images_share_one_grid_and_masks_are_binary(images):
    ref = images["image"]
    assert ref.GetPixelID() == sitk.sitkInt16 and ref.GetSpacing() == (1.0, 1.0, 1.0)
    for role, img in images.items():
        assert img.GetSize() == ref.GetSize(), role
        assert np.allclose(img.GetOrigin(), ref.GetOrigin()) and np.allclose(img.GetDirection(), ref.GetDirection()), role
    for role in ("cord", "lesion"):
        assert set(np.unique(sitk.GetArrayViewFromImage(images[role]))) == {0, 1}, role
    assert sorted(np.unique(sitk.GetArrayViewFromImage(images["discs"]))) == [0, 3, 4, 5, 6, 7, 8]


def test_the_lesion_is_the_only_difference_and_lies_inside_the_cord(images):
    plain, lesioned = (sitk.GetArrayFromImage(images[r]).astype(np.int32) for r in ("image", "image_lesion"))
    lesion = sitk.GetArrayFromImage(images["lesion"]) > 0
    cord = sitk.GetArrayFromImage(images["cord"]) > 0
    meta = sample_metadata()["pseudo_lesion"]
    assert lesion.sum() == meta["n_voxels"] and np.all(cord[lesion])
    assert np.all(plain[~lesion] == lesioned[~lesion])
    assert lesioned[lesion].mean() > plain[lesion].mean() + 0.3 * (meta["csf_mean"] - meta["cord_mean"])  # brighter: T2 hyperintense


def test_six_disc_labels_give_six_segments_and_the_lesion_lies_in_its_stated_one(paths, images):
    for levels_path, kind in ((paths["discs"], "discs"), (paths["discs_markups"], None)):
        levels = read_levels(levels_path, kind, images["image"], images["cord"])
        assert levels.unknown_segments == () and levels.inferred == ("C2", "T1")
    meta = sample_metadata()["pseudo_lesion"]
    upper, lower = (p[2] for p in levels.segment_points(meta["segment"]))
    kji = np.argwhere(sitk.GetArrayViewFromImage(images["lesion"]) > 0).mean(axis=0)
    z = images["lesion"].TransformContinuousIndexToPhysicalPoint(kji[::-1].tolist())[2]
    assert lower <= z <= upper
    assert z == pytest.approx(meta["centroid_lps_mm"][2], abs=0.01)


def test_detection_scores_all_six_segments_of_the_sample(paths, tmp_path):
    from u2adcore.config import U2ADConfig
    from u2adcore.detect import detect_study, detection_config
    from u2adcore.methods.registry import get_method

    study = load_study(paths["image_lesion"], paths["cord"], levels=paths["discs"], levels_kind="discs")
    cfg = U2ADConfig()
    method = get_method("zscore", config=cfg)
    result = detect_study(study, method, detection_config(cfg, method))
    assert [s.name for s in result.segments] == list(SEGMENTS)
    assert all(s.known and s.score is not None for s in result.segments)
    assert [s.name for s in result.segments if result.is_inferred(s)] == ["C2-C3", "C7-T1"]


@pytest.mark.realdata
def test_the_as_is_image_is_a_crop_of_errsm21_with_the_same_analysed_slice(realspine, paths):
    src = realspine / "sct_2014_errsm" / "errsm_21"
    crop = sample_metadata()["crop"]
    full = sitk.ReadImage(str(src / "t2.nii.gz"))
    expected = sitk.RegionOfInterest(full, crop["size"], crop["index"])
    sample = sitk.ReadImage(str(paths["image"]))
    assert np.array_equal(sitk.GetArrayFromImage(expected), sitk.GetArrayFromImage(sample))
    assert np.allclose(expected.GetOrigin(), sample.GetOrigin())
    (a,) = prepare_slices(load_study(src / "t2.nii.gz", src / "t2_manual_segmentation.nii.gz"), PreprocessConfig())
    (b,) = prepare_slices(load_study(paths["image"], paths["cord"]), PreprocessConfig())
    assert np.array_equal(a.image, b.image) and np.array_equal(a.roi, b.roi)
