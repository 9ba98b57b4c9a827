"""The shipped sample's registration with Slicer's Sample Data module, against a strict
stand-in for `SampleDataLogic.registerCustomSampleDataSource` that fetches each file the way
SampleData does (urllib) and checks it against its checksum."""
from __future__ import annotations

import hashlib
import urllib.request

import pytest

from U2ADSlicerLib.sample_data import CATEGORY, HEALTHY_SAMPLE_NAME, SAMPLE_NAME, register_sample_data

LOAD_FILE_TYPES = {"VolumeFile", "SegmentationFile", "MarkupsFile"}


class StrictSampleData:
    """Slicer 5's signature; anything this stand-in does not implement raises."""

    def __init__(self, cache):
        self.cache, self.sources = cache, []

    def __call__(self, category="Custom", sampleName=None, uris=None, fileNames=None, nodeNames=None,
                 customDownloader=None, thumbnailFileName=None, loadFileTypes=None, loadFiles=None,
                 loadFileProperties={}, checksums=None, loadFileType=None):
        if customDownloader is not None or loadFiles is not None or loadFileProperties or loadFileType is not None:
            raise NotImplementedError("the stand-in implements plain file sources only")
        assert isinstance(sampleName, str) and sampleName
        assert len(uris) == len(fileNames) == len(nodeNames) == len(loadFileTypes) == len(checksums)
        assert set(loadFileTypes) <= LOAD_FILE_TYPES
        fetched = []
        for uri, name, checksum in zip(uris, fileNames, checksums):
            algo, digest = checksum.split(":")
            assert algo == "SHA256"
            target = self.cache / name
            urllib.request.urlretrieve(uri, target)  # what SampleDataLogic.downloadFile does
            assert hashlib.sha256(target.read_bytes()).hexdigest() == digest, name
            fetched.append(target)
        with open(thumbnailFileName, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        self.sources.append({"category": category, "name": sampleName, "files": fetched, "nodes": nodeNames, "types": loadFileTypes})


def test_both_samples_register_and_every_file_is_fetched_intact(tmp_path):
    register = StrictSampleData(tmp_path)
    register_sample_data(register)
    assert [s["name"] for s in register.sources] == [SAMPLE_NAME, HEALTHY_SAMPLE_NAME]
    assert SAMPLE_NAME == "U2AD cervical T2 sample"
    for source in register.sources:
        assert source["category"] == CATEGORY
        assert source["types"] == ["VolumeFile", "SegmentationFile", "MarkupsFile"]
        assert all(path.stat().st_size > 0 for path in source["files"])
    lesioned, healthy = (s["files"][0].name for s in register.sources)
    assert "pseudolesion" in lesioned and "pseudolesion" not in healthy


def test_the_fetched_files_load_as_a_study_with_six_scored_segments(tmp_path):
    from u2adcore.config import SEGMENTS
    from u2adcore.io.study import load_study

    register = StrictSampleData(tmp_path)
    register_sample_data(register)
    image, cord, discs = register.sources[0]["files"]
    study = load_study(image, cord, levels=discs)  # the point list names its discs
    assert study.levels.source == "markups:discs+PAM50 prior"
    assert study.levels.unknown_segments == () and len(SEGMENTS) == 6


def test_an_unsupported_argument_is_caught_by_the_stand_in(tmp_path):
    with pytest.raises(NotImplementedError):
        StrictSampleData(tmp_path)(sampleName="x", uris=[], fileNames=[], nodeNames=[], loadFileTypes=[], checksums=[],
                                   customDownloader=print)
