"""IterMask (docs/ITERMASK.md): the refinement's mask only shrinks and stops at the threshold;
with the shipped network a healthy cord ends (nearly) unmasked and a bright insert stays masked;
`u2ad pretrain --method itermask` trains, checkpoints and resumes exactly; `u2ad detect
--method itermask` writes the whole output contract."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from u2adcore.cli.main import main
from u2adcore.config import U2ADConfig
from u2adcore.data.phantom import write_phantom_set
from u2adcore.detect import OUTPUT_FILES
from u2adcore.io.study import load_study
from u2adcore.methods.base import Method
from u2adcore.methods.itermask import refine, subject_threshold
from u2adcore.methods.registry import available, get_method
from u2adcore.resources import itermask_model_path
from u2adcore.training.itermask import band_columns, blob_masks, load_itermask, read_itermask
from u2adcore.volume.preprocess import prepare_slices


def _cord(h: int = 64, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright vertical cord on a dark background, [1, 1, h, w] image and ROI."""
    roi = torch.zeros(1, 1, h, w, dtype=torch.bool)
    roi[..., 4:60, 13:20] = True
    x = torch.where(roi, 0.4, 0.1) + 0.01 * torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(0))
    return x, roi


def _positive_error(x):
    return lambda recon: (x - recon).clamp(min=0.0)


def test_the_mask_never_grows_and_stays_inside_the_cord():
    x, roi = _cord()
    seen = []
    gen = torch.Generator().manual_seed(1)

    def noisy(mask):  # a poor model: random errors every round
        seen.append(mask.clone())
        return x - 0.2 * torch.rand(x.shape, generator=gen)

    result = refine(noisy, _positive_error(x), roi, threshold=0.1, step_fraction=0.2, max_iters=30)
    assert torch.equal(seen[0], roi)
    for before, after in zip(seen, seen[1:]):
        assert not bool((after & ~before).any())
    assert np.all(np.diff(result.masked_fraction) <= 0)
    assert not (result.mask & ~roi[0, 0].numpy()).any()


def test_it_stops_at_the_threshold_with_only_the_unexplained_region_masked():
    x, roi = _cord()
    lesion = torch.zeros_like(roi)
    lesion[..., 30:36, 14:19] = True

    def explains_all_but_the_lesion(mask):  # identity where visible; the hidden lesion comes back 0.3 too dark
        return torch.where(lesion & mask, x - 0.3, x)

    result = refine(explains_all_but_the_lesion, _positive_error(x), roi, threshold=0.1, step_fraction=0.25, max_iters=20)
    assert result.converged
    np.testing.assert_array_equal(result.mask, lesion[0, 0].numpy())
    assert (result.error[result.mask] > result.threshold).all()
    # at most a quarter of the cord is unmasked per round: 4 rounds for the healthy part, 1 to find nothing left
    assert result.rounds == math.ceil((int(roi.sum()) - int(lesion.sum())) / math.ceil(0.25 * int(roi.sum()))) + 1


def test_max_iters_ends_an_unconverged_refinement_with_a_matching_reconstruction():
    x, roi = _cord()
    calls = []

    def slow(mask):
        calls.append(int(mask.sum()))
        return x - 0.05 * mask.float()

    result = refine(slow, _positive_error(x), roi, threshold=0.1, step_fraction=0.1, max_iters=3)
    assert not result.converged and result.rounds == 3
    assert len(calls) == 4 and calls[-1] == int(result.mask.sum())  # the returned maps are of the final mask


def test_subject_threshold_only_loosens_for_noisier_slices():
    assert subject_threshold(0.1, 0.01, 0.02, 3.0) == pytest.approx(0.1)
    assert subject_threshold(0.1, 0.04, 0.02, 3.0) == pytest.approx(0.2)
    assert subject_threshold(0.1, 1.0, 0.02, 3.0) == pytest.approx(0.3)


def test_training_masks_lie_in_the_cord_and_include_whole_cord_masks():
    _, roi = _cord()
    roi = roi.expand(16, 1, -1, -1)
    masks = blob_masks(roi, torch.Generator().manual_seed(0), full_prob=0.3)
    assert not bool((masks & ~roi).any())
    share = masks.flatten(1).sum(1) / roi.flatten(1).sum(1)
    assert (share == 1).any() and ((share > 0.05) & (share < 0.95)).any()


def test_band_is_centred_on_the_cord_and_holds_all_of_it():
    roi = np.zeros((256, 256), bool)
    roi[20:200, 150:158] = True
    cols = band_columns(roi, 64, 4)
    assert cols.stop - cols.start == 64 and cols.start <= 150 and cols.stop >= 158
    roi[100:120, 60:200] = True  # wider than the band: it widens
    cols = band_columns(roi, 64, 4)
    assert cols.start <= 60 and cols.stop > 200 and (cols.stop - cols.start) % 4 == 0


# -- the shipped network on a real held-back cord ------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    if not itermask_model_path().is_file():
        pytest.fail(f"{itermask_model_path()} is missing: build it with scripts/build_itermask_model.sh")
    cfg = U2ADConfig()
    cfg.inference.device = "cpu"
    return get_method("itermask", config=cfg)


@pytest.fixture(scope="module")
def real_slice(errsm):
    s = errsm["errsm_23"]
    return prepare_slices(load_study(s["image"], s["cord"]), U2ADConfig().preprocess)[0]


def test_the_method_is_registered_and_its_checkpoint_is_complete(shipped):
    assert "itermask" in available() and isinstance(shipped, Method)
    loaded = load_itermask(itermask_model_path())
    assert {"errsm_11", "errsm_18", "errsm_21"} <= set(loaded.training_data["studies"]) and loaded.training_data["n_studies"] == 9
    assert read_itermask(itermask_model_path())["train_state"] is None
    stats = loaded.normal_stats
    assert np.all(np.diff(stats["hyper"]) >= 0) and stats["noise"] > 0


def test_a_healthy_cord_ends_nearly_unmasked(shipped, real_slice):
    result = shipped.refine_slice(real_slice.image, real_slice.roi)
    assert result.converged and result.masked_fraction[0] == 1.0
    assert result.mask.sum() <= 0.05 * real_slice.roi.sum()


def test_a_bright_insert_stays_masked(shipped, real_slice):
    image, roi = real_slice.image.copy(), real_slice.roi
    rows, cols = np.nonzero(roi)
    r0 = int(np.median(rows))
    insert = roi & (np.abs(np.arange(roi.shape[0])[:, None] - r0) <= 5)
    cord_level = float(np.median(image[roi]))
    image[insert] = cord_level + 0.5 * (1.0 - cord_level)  # halfway from cord to the brightest CSF
    result = shipped.refine_slice(image, roi)
    assert result.mask[insert].mean() >= 0.6
    assert (result.mask & ~insert).sum() <= 0.05 * roi.sum()
    maps = shipped.maps([real_slice])[0]
    assert maps.recon.shape == image.shape and maps.eu is None
    np.testing.assert_array_equal(maps.recon[~roi], real_slice.image[~roi])
    np.testing.assert_allclose(maps.residual, np.where(roi, real_slice.image - maps.recon, 0.0), atol=1e-6)
    np.testing.assert_allclose(maps.error, np.abs(maps.residual))


# -- CLI ---------------------------------------------------------------------------------------------
TINY = ["--method", "itermask", "--n-slices", "2", "--batch-size", "2", "--device", "cpu", "--seed", "0"]


def test_pretrain_trains_checkpoints_and_resumes_exactly(tmp_path):
    manifest = write_phantom_set(tmp_path / "set", n=2, seed=3, lesion_fraction=0.0)
    straight, split = tmp_path / "straight.pt", tmp_path / "split.pt"
    assert main(["--progress", "none", "pretrain", "--manifest", str(manifest), "--out", str(straight), *TINY, "--epochs", "2"]) == 0
    assert main(["--progress", "none", "pretrain", "--manifest", str(manifest), "--out", str(split), *TINY, "--epochs", "1"]) == 0
    assert read_itermask(split)["train_state"]["epoch"] == 1
    assert main(["--progress", "none", "pretrain", "--manifest", str(manifest), "--out", str(split), *TINY, "--epochs", "2", "--resume"]) == 0
    a, b = read_itermask(straight), read_itermask(split)
    assert b["train_state"]["epoch"] == 2 and len(b["train_state"]["history"]) == 2
    for k, v in a["weights"].items():
        assert torch.equal(v, b["weights"][k]), k
    assert a["config"]["train"]["noise_var"] == pytest.approx(0.001)
    assert a["normal_stats"]["n_slices"] >= 2 and a["meta"]["method"] == "itermask"
    assert (tmp_path / "split_loss.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_detect_on_a_real_study_writes_the_whole_output_contract(errsm, tmp_path):
    s, out = errsm["errsm_24"], tmp_path / "det"
    assert main(["--progress", "none", "detect", str(s["image"]), "--cord", str(s["cord"]), "--levels", str(s["landmarks"]),
                 "--levels-kind", "bodies", "--method", "itermask", "--device", "cpu", "--out", str(out)]) == 0
    written = {p.name for p in out.iterdir()}
    assert written == set(OUTPUT_FILES) - {"eu_map.nii.gz"}  # IterMask has no epistemic uncertainty
    result = json.loads((out / "result.json").read_text())
    assert result["method"]["method"] == "itermask" and result["method"]["sha256"]
    assert len(result["segments"]) == 6 and np.isfinite(result["patient_score"])
    image = sitk.ReadImage(str(s["image"]))
    amap = sitk.ReadImage(str(out / "anomaly_map.nii.gz"))
    assert amap.GetSize() == image.GetSize() and np.allclose(amap.GetOrigin(), image.GetOrigin())


# -- the refinement as an option of U2AD's Monte-Carlo inference ------------------------------------
@pytest.mark.parametrize("norm", [None, "visible_cord"])
def test_refined_mc_inference_only_rereconstructs_suspect_patches(norm):
    """Also for a model that normalises by the visible cord (the shipped one): its refinement
    rounds need the pixel cord too."""
    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.model.presets import model_config
    from u2adcore.uncertainty.montecarlo import mc_inference
    from u2adcore.model.patches import patch_to_pixels, roi_patches
    from u2adcore.uncertainty.refine import patch_residual, refined_mc_inference, robust_threshold

    torch.manual_seed(0)
    model = EdgeMAE(model_config("tiny", img_size=64, intensity_norm=norm, anchor_visible=norm is not None)).eval()
    x, roi = _cord(64, 64)
    plain = mc_inference(model, x, roi, K=2, seed=0)
    same, _ = refined_mc_inference(model, x, roi, rounds=0, mad_k=2.0, K=2, seed=0)
    np.testing.assert_array_equal(same.mu, plain.mu)
    refined, suspect = refined_mc_inference(model, x, roi, rounds=3, mad_k=0.0, K=2, seed=0)
    p = model.cfg.patch_size
    roi_p = roi_patches(roi, p)
    scores = patch_residual(x, torch.from_numpy(plain.mu)[:, None], roi, p)
    first = roi_p & (scores > robust_threshold(scores, roi_p, 0.0)[:, None])  # suspect after round 0
    assert first.any() and not bool((torch.from_numpy(suspect) & ~first).any())  # the suspect set only shrinks
    np.testing.assert_array_equal(refined.eu, plain.eu)
    changed = torch.from_numpy(refined.mu != plain.mu)
    assert changed.any() and not bool((changed & ~patch_to_pixels(first, p)[:, 0]).any())
