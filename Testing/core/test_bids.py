"""The Spine Generic BIDS reader on a fake dataset built from real files in tmp_path."""
from __future__ import annotations

import logging

import pytest

from u2adcore.data.bids import read_spine_generic
from u2adcore.errors import InputError


def link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


@pytest.fixture
def spine_generic(realspine, errsm, tmp_path):
    """sub-pam50 (cord + discs), sub-errsm11 (cord only), sub-errsm18 (no cord), sub-gone (broken link)."""
    root = tmp_path / "data-multi-subject"
    template = realspine / "sct_testing_data" / "template" / "template"
    labels = root / "derivatives" / "labels"
    link(template / "PAM50_small_t2.nii.gz", root / "sub-pam50/anat/sub-pam50_T2w.nii.gz")
    link(template / "PAM50_small_cord.nii.gz", labels / "sub-pam50/anat/sub-pam50_T2w_seg-manual.nii.gz")
    link(template / "PAM50_small_label_disc.nii.gz", labels / "sub-pam50/anat/sub-pam50_T2w_labels-disc-manual.nii.gz")
    link(errsm["errsm_11"]["image"], root / "sub-errsm11/anat/sub-errsm11_T2w.nii.gz")
    link(errsm["errsm_11"]["cord"], labels / "sub-errsm11/anat/sub-errsm11_T2w_seg-manual.nii.gz")
    link(errsm["errsm_18"]["image"], root / "sub-errsm18/anat/sub-errsm18_T2w.nii.gz")
    link(tmp_path / "never-fetched", root / "sub-gone/anat/sub-gone_T2w.nii.gz")
    link(errsm["errsm_21"]["cord"], labels / "sub-gone/anat/sub-gone_T2w_seg-manual.nii.gz")
    return root


@pytest.mark.realdata
def test_subjects_with_a_cord_are_read_and_the_others_skipped_with_a_warning(spine_generic, caplog):
    with caplog.at_level(logging.WARNING, logger="u2adcore.data.bids"):
        entries = read_spine_generic(spine_generic)
    assert [e.id for e in entries] == ["sub-errsm11", "sub-pam50"]
    errsm11, pam50 = entries
    assert errsm11.levels is None and errsm11.levels_kind is None
    assert pam50.levels_kind == "discs" and pam50.levels.name == "sub-pam50_T2w_labels-disc-manual.nii.gz"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "skipping sub-errsm18" in warned and "skipping sub-gone" in warned


@pytest.mark.realdata
def test_disc_labels_of_an_entry_give_every_segment(spine_generic):
    study = {e.id: e for e in read_spine_generic(spine_generic)}["sub-pam50"].load()
    assert study.levels.source == "discs" and study.levels.unknown_segments == ()


def test_a_folder_without_usable_subjects_is_refused(tmp_path):
    (tmp_path / "sub-01" / "anat").mkdir(parents=True)
    (tmp_path / "sub-01" / "anat" / "sub-01_T2w.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="no usable subject: expected sub-\\*/anat/sub-\\*_T2w.nii.gz"):
        read_spine_generic(tmp_path)
    with pytest.raises(InputError, match="Spine Generic dataset folder not found"):
        read_spine_generic(tmp_path / "nowhere")
