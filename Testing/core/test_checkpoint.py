"""Checkpoints: exact round trip, strict loading with clear errors, thresholds, exact resume."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from u2adcore import __version__
from u2adcore.config import Thresholds, TrainConfig, U2ADConfig
from u2adcore.errors import CheckpointError
from u2adcore.model.edgemae import EdgeMAE
from u2adcore.model.masking import RandomMasking, random_mask
from u2adcore.model.patches import roi_patches
from u2adcore.model.presets import model_config
from u2adcore.training.checkpoint import FORMAT_VERSION, load_checkpoint, read_checkpoint, save_checkpoint, update_thresholds
from u2adcore.training.loop import RunInfo, train
from u2adcore.training.slices_data import SliceArrays, SliceInfo

S = 32
MC = model_config("tiny", img_size=S)
FLAT_MARGIN = 0.8  # the shipped model's μ must beat the best flat fill by at least 20 % (docs/MODEL.md: 34 % on errsm_24)


def _data(n=8):
    rng = np.random.default_rng(0)
    roi = np.zeros((n, 1, S, S), bool)
    roi[:, :, 4:28, 12:20] = True
    return SliceArrays(rng.random((n, 1, S, S)).astype(np.float32), roi, [SliceInfo("a", i) for i in range(n)])


def _model(seed=0):
    torch.manual_seed(seed)
    return EdgeMAE(MC)


def _save(path, model=None, **kw):
    model = model or _model()
    save_checkpoint(path, model, U2ADConfig(model=MC), training_data={"n_studies": 1, "n_slices": 8, "studies": ["a"]}, **kw)
    return model


def _outputs(model):
    data = _data(2)
    x, roi = torch.from_numpy(data.images), torch.from_numpy(data.roi)
    rp = roi_patches(roi, 8)
    with torch.no_grad():
        return model.eval()(x, rp, random_mask(rp, 0.75, torch.Generator().manual_seed(0))).image


def test_round_trip(tmp_path):
    path = tmp_path / "m.pt"
    model = _save(path, thresholds=Thresholds(patient=0.1, segment=0.2, method="normal-only FPR=0.05", n_studies=9))
    loaded = load_checkpoint(path)
    assert torch.equal(_outputs(model), _outputs(loaded.model))
    assert loaded.config.model == MC and loaded.config == U2ADConfig(model=MC)
    assert loaded.thresholds == Thresholds(patient=0.1, segment=0.2, method="normal-only FPR=0.05", n_studies=9)
    assert loaded.training_data["studies"] == ["a"]
    assert loaded.meta["package_version"] == __version__ and loaded.meta["weights_dtype"] == "float32"
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not loaded.model.training
    assert not list(tmp_path.glob(".*part*"))  # atomic write left nothing behind


def test_half_precision_weights_load_as_float32(tmp_path):
    path, ref = tmp_path / "m16.pt", tmp_path / "m32.pt"
    model = _save(ref)
    _save(path, model, half=True)
    loaded = load_checkpoint(path)
    assert loaded.meta["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert torch.allclose(_outputs(model), _outputs(loaded.model), atol=5e-3)
    assert path.stat().st_size < 0.6 * ref.stat().st_size


def test_truncated_file(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match=r"m\.pt: not a readable checkpoint, the file is truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def _rewrite(path, change):
    payload = read_checkpoint(path)
    change(payload)
    torch.save(payload, path)


def test_other_format_version(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    _rewrite(path, lambda p: p.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        load_checkpoint(path)


def test_preset_name_that_does_not_match(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    _rewrite(path, lambda p: p["config"]["model"].update(preset="small"))
    with pytest.raises(CheckpointError, match="does not match its preset name: embed_dim=32 .preset 'small' has 128"):
        load_checkpoint(path)


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    _rewrite(path, lambda p: p["weights"].pop("edge_head.bias"))
    with pytest.raises(CheckpointError, match=r"(?s)m\.pt: weights do not fit .*edge_head\.bias"):
        load_checkpoint(path)
    _rewrite(path, lambda p: p["config"]["model"].update(bogus=1))
    with pytest.raises(CheckpointError, match=r"m\.pt: its settings do not fit .*bogus"):
        load_checkpoint(path)


def test_update_thresholds(tmp_path):
    path = tmp_path / "m.pt"
    model = _save(path)
    assert load_checkpoint(path).thresholds is None
    out = update_thresholds(path, Thresholds(patient=0.3, method="x"), out=tmp_path / "cal.pt")
    assert load_checkpoint(out).thresholds == Thresholds(patient=0.3, method="x")
    assert load_checkpoint(path).thresholds is None
    update_thresholds(path, Thresholds(segment=0.5))
    again = load_checkpoint(path)
    assert again.thresholds.segment == 0.5 and torch.equal(_outputs(model), _outputs(again.model))


def test_resume_gives_the_same_weights(tmp_path):
    data = _data()
    cfg = TrainConfig(epochs=2, batch_size=4, device="cpu", lr_step_epochs=1, lr_gamma=0.5)
    info = RunInfo(U2ADConfig(model=MC), data.summary())
    straight = _model()
    train(straight, data, cfg, strategy=RandomMasking(), checkpoint_path=tmp_path / "a.pt", run_info=info)
    first = _model()
    train(first, data, dataclasses.replace(cfg, epochs=1), strategy=RandomMasking(), checkpoint_path=tmp_path / "b.pt", run_info=info)
    resumed = _model(seed=5)  # different start: everything must come from the checkpoint
    history = train(resumed, data, cfg, strategy=RandomMasking(), checkpoint_path=tmp_path / "b.pt", run_info=info, resume=True)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in history.epochs] == [1, 2] and history.epochs[1]["lr"] == pytest.approx(1.5e-3)
    meta = read_checkpoint(tmp_path / "b.pt")["meta"]
    assert meta["epochs_done"] == 2 and meta["complete"]


def test_resume_refuses_other_data_or_a_finished_model(tmp_path):
    data = _data()
    info = RunInfo(U2ADConfig(model=MC), data.summary())
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu")
    train(_model(), data, cfg, strategy=RandomMasking(), checkpoint_path=tmp_path / "a.pt", run_info=info)
    with pytest.raises(CheckpointError, match="was trained with 8 slices.*now 6"):
        train(_model(), _data(6), cfg, strategy=RandomMasking(), checkpoint_path=tmp_path / "a.pt", run_info=info, resume=True)
    _save(tmp_path / "final.pt")
    with pytest.raises(CheckpointError, match="without training state"):
        train(_model(), data, cfg, strategy=RandomMasking(), checkpoint_path=tmp_path / "final.pt", run_info=info, resume=True)


def test_the_shipped_model_loads_and_records_its_training_data():
    from u2adcore.resources import default_model_path

    path = default_model_path()
    assert path.is_file(), f"{path} missing: run scripts/build_default_model.sh"
    assert path.stat().st_size < 20e6
    loaded = load_checkpoint(path)
    m = loaded.config.model
    assert m.preset == "compact" and m.intensity_norm == "visible_profile" and m.loss_erode == 1 and not m.anchor_visible
    assert loaded.meta["complete"] and loaded.meta["weights_dtype"] == "float16"
    studies = loaded.training_data["studies"]
    assert {"errsm_11", "errsm_18", "errsm_21"} <= set(studies)
    assert not {"errsm_23", "errsm_24", "sct_example_data"} & set(studies)  # held back for evaluation
    assert read_checkpoint(path)["train_state"] is None


@pytest.mark.realdata
def test_the_shipped_model_reconstructs_a_held_back_real_cord(errsm):
    """On real healthy slices it never saw, the Monte-Carlo mean μ (the detection path) fills the
    cord better than the slice's cord mean (the best flat fill), and far better than the same
    network untrained (docs/MODEL.md; benchmarks/recon_quality.py measures all held-back subjects)."""
    from u2adcore.config import PreprocessConfig
    from u2adcore.data.manifest import ManifestEntry
    from u2adcore.resources import default_model_path
    from u2adcore.scoring.maps import analysis_roi
    from u2adcore.training.slices_data import load_entries
    from u2adcore.uncertainty.montecarlo import mc_inference

    s = errsm["errsm_24"]
    data = load_entries([ManifestEntry("errsm_24", s["image"], s["cord"])], PreprocessConfig(n_slices=3))
    model = load_checkpoint(default_model_path()).model
    torch.manual_seed(0)
    untrained = EdgeMAE(model.cfg).eval()

    def rel_mse(pred_of):
        out = []
        for i, mu in enumerate(pred_of):
            x, roi = data.images[i, 0], data.roi[i, 0]
            ev = analysis_roi(roi, 1)
            out.append(np.mean((x[ev] - mu[ev]) ** 2) / np.median(x[roi]) ** 2)
        return float(np.mean(out))

    flat = [np.full_like(data.images[i, 0], data.images[i, 0][analysis_roi(data.roi[i, 0], 1)].mean()) for i in range(len(data))]
    err = {"model": rel_mse(mc_inference(model, data.images, data.roi, K=10).mu),
           "untrained": rel_mse(mc_inference(untrained, data.images, data.roi, K=10).mu),
           "flat": rel_mse(flat)}
    assert err["model"] < FLAT_MARGIN * err["flat"], err
    assert err["model"] < 0.5 * err["untrained"], err


def test_a_checkpoint_without_the_newer_model_settings_loads_with_their_defaults(tmp_path):
    """Checkpoints written before `intensity_norm` existed keep working: the field takes its
    default (the plain input), and a model that has it set keeps it through a save."""
    path = tmp_path / "old.pt"
    model = _save(path)
    _rewrite(path, lambda p: [p["config"]["model"].pop(k) for k in ("intensity_norm", "norm_level")])
    loaded = load_checkpoint(path)
    assert loaded.config.model.intensity_norm is None
    assert torch.equal(_outputs(model), _outputs(loaded.model))
    normed = tmp_path / "normed.pt"
    cfg = dataclasses.replace(MC, intensity_norm="visible_cord")
    torch.manual_seed(0)
    save_checkpoint(normed, EdgeMAE(cfg), U2ADConfig(model=cfg), training_data={"n_studies": 1, "n_slices": 8, "studies": ["a"]})
    assert load_checkpoint(normed).config.model.intensity_norm == "visible_cord"
