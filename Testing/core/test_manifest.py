"""CSV manifests: relative paths, every check with the row and column named, a round trip
through write_manifest, and loading a real study from a row."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.errors import InputError
from u2adcore.data.manifest import ManifestEntry, read_manifest, write_manifest

HEADER = "id,image,cord,levels,levels_kind,label,segments,lesion\n"


@pytest.fixture
def dataset(tmp_path):
    """A folder with two tiny studies' files (contents do not matter to the manifest reader)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a_t2.nii.gz", "a_cord.nii.gz", "a_discs.nii.gz", "a_lesion.nii.gz", "b_t2.nii.gz", "b_cord.nii.gz", "b.mrk.json"):
        (data / name).write_bytes(b"")
    return tmp_path


def write(dataset, rows: str, header: str = HEADER):
    path = dataset / "manifest.csv"
    path.write_text(header + rows)
    return path


GOOD = (
    "a,data/a_t2.nii.gz,data/a_cord.nii.gz,data/a_discs.nii.gz,discs,1,C4-C5;C5-C6,data/a_lesion.nii.gz\n"
    "b,data/b_t2.nii.gz,data/b_cord.nii.gz,data/b.mrk.json,,0,,\n"
)


def test_rows_resolve_relative_to_the_manifest(dataset):
    a, b = read_manifest(write(dataset, GOOD))
    assert a == ManifestEntry(
        id="a", image=dataset / "data/a_t2.nii.gz", cord=dataset / "data/a_cord.nii.gz",
        levels=dataset / "data/a_discs.nii.gz", levels_kind="discs", label=1,
        segments=("C4-C5", "C5-C6"), lesion=dataset / "data/a_lesion.nii.gz",
    )
    assert b.levels == dataset / "data/b.mrk.json" and b.levels_kind is None  # markups name their kind
    assert b.label == 0 and b.segments == () and b.lesion is None


def test_the_cord_column_is_optional(dataset):
    """No cord mask: the study's cord is segmented when it is loaded (a given mask still wins)."""
    a, b = read_manifest(write(dataset, "a,data/a_t2.nii.gz,\nb,data/b_t2.nii.gz,\n", header="id,image,levels\n"))
    assert a.cord is None and b.cord is None
    (c,) = read_manifest(write(dataset, "c,data/a_t2.nii.gz,,\n", header="id,image,cord,levels\n"))
    assert c.cord is None


def test_only_required_columns_are_needed(dataset):
    (entry,) = read_manifest(write(dataset, "a,data/a_t2.nii.gz,data/a_cord.nii.gz,\n", header="id,image,cord,levels\n"))
    assert entry.levels is None and entry.label is None and entry.segments == ()


@pytest.mark.parametrize(
    "header, rows, message",
    [
        ("id,image,cord\n", "a,data/a_t2.nii.gz,data/a_cord.nii.gz\n", r"missing required column\(s\) \['levels'\]"),
        (HEADER, GOOD + "a,data/b_t2.nii.gz,data/b_cord.nii.gz,,,,,\n", r"row 4 \(id 'a'\): duplicate id, first used on row 2"),
        (HEADER, "a,data/a_t2.nii.gz,data/a_cord.nii.gz,,,1,C4-C5;C9-C10,\n", r"row 2 \(id 'a'\): unknown segment\(s\) \['C9-C10'\]"),
        (HEADER, "a,data/a_t2.nii.gz,data/a_cord.nii.gz,,,yes,,\n", "row 2 \\(id 'a'\\): label must be 0 or 1 .*'yes'"),
        (HEADER, "a,data/a_t2.nii.gz,data/missing.nii.gz,,,,,\n", r"row 2 \(id 'a'\): cord file not found: .*data/missing\.nii\.gz"),
        (HEADER, "a,data/a_t2.nii.gz,data/a_cord.nii.gz,data/a_discs.nii.gz,,,,\n", "row 2 .*levels_kind is empty; say 'discs' or 'bodies'"),
        (HEADER, "a,data/a_t2.nii.gz,data/a_cord.nii.gz,,,0,C4-C5,\n", "label is 0 .* but positive segments"),
        (HEADER, "a,,data/a_cord.nii.gz,,,,,\n", "row 2 .*column 'image' is empty"),
        (HEADER, "", "lists no study"),
    ],
)
def test_bad_manifests_are_refused_naming_the_row(dataset, header, rows, message):
    path = write(dataset, rows, header)
    with pytest.raises(InputError, match=message) as info:
        read_manifest(path)
    assert info.value.path == str(path)


def test_written_manifest_reads_back_identically(dataset):
    entries = read_manifest(write(dataset, GOOD))
    out = dataset / "elsewhere" / "copy.csv"
    write_manifest(entries, out)
    assert read_manifest(out) == entries
    assert "../data/a_t2.nii.gz" in out.read_text()  # relative to the new manifest, not absolute


@pytest.mark.realdata
def test_an_entry_loads_its_study(errsm, tmp_path):
    files = errsm["errsm_24"]
    path = tmp_path / "m.csv"
    path.write_text(HEADER + f"s24,{files['image']},{files['cord']},{files['landmarks']},bodies,0,,\n")
    (entry,) = read_manifest(path)
    study = entry.load()
    assert study.id == "s24" and study.levels is not None and study.levels.unknown_segments == ()
    assert study.image.GetSize() == sitk.ReadImage(str(files["image"])).GetSize()
    assert np.count_nonzero(sitk.GetArrayViewFromImage(study.cord)) > 0
