import pytest

from u2adcore.errors import OutputExistsError
from u2adcore.io.atomic import atomic_path, staged_output_dir, write_text


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("user's file")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_write_text_replaces_atomically(tmp_path):
    write_text(tmp_path / "a" / "b.json", "{}")
    assert (tmp_path / "a" / "b.json").read_text() == "{}"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]


def test_staged_dir_refuses_foreign_files_and_keeps_them(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"res: folder already holds files \(notes.txt\).*--overwrite"):
        with staged_output_dir(out):
            pass
    assert (out / "notes.txt").read_text() == "mine"


def test_staged_dir_interrupted_writes_nothing(tmp_path):
    out = tmp_path / "res"
    with pytest.raises(KeyboardInterrupt):
        with staged_output_dir(out) as stage:
            (stage / "anomaly_map.nii.gz").write_bytes(b"x")
            raise KeyboardInterrupt
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_moves_everything_on_success(tmp_path):
    out = tmp_path / "res"
    with staged_output_dir(out) as stage:
        (stage / "a.txt").write_text("1")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.txt").write_text("2")
    assert (out / "a.txt").read_text() == "1" and (out / "sub" / "b.txt").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_atomic_files_get_the_ordinary_mode(tmp_path):
    import os

    write_text(tmp_path / "r.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~mask
