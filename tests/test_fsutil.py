"""The atomic writers every results file, scoreboard, config, benchmark and image goes through."""
import json
import os

import pytest

from restore_core.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, current_umask


def test_json_round_trip_mode_and_folder_creation(tmp_path):
    path = tmp_path / "new" / "deeper" / "r.json"
    doc = {"b": 1, "a": [1.5, None], "Δ": "ü"}
    assert atomic_write_json(path, doc) == path
    assert json.loads(path.read_text()) == doc and list(json.loads(path.read_text())) == ["b", "a", "Δ"]
    assert path.read_text().endswith("}\n")
    assert (path.stat().st_mode & 0o777) == 0o666 & ~current_umask()
    assert os.listdir(path.parent) == ["r.json"]  # no temporary file left


def test_replacing_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    path = tmp_path / "t.txt"
    atomic_write_text(path, "old")
    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})  # fails while serialising: nothing written
    assert path.read_text() == "old"
    atomic_write_text(path, "new ü")
    assert path.read_bytes() == "new ü".encode("utf-8")


def test_a_failed_replace_removes_the_temporary_file(tmp_path):
    target = tmp_path / "dir_in_the_way"
    (target / "child").mkdir(parents=True)  # os.replace of a file onto a non-empty directory fails
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert sorted(os.listdir(tmp_path)) == ["dir_in_the_way"]
