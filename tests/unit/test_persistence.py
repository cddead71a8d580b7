import json
import pickle

import numpy as np
import pytest

from sparkgd.core.persistence import ModelFormatError, read_model, write_model


def test_round_trip_and_no_pickle(tmp_path):
    p = tmp_path / "m"
    write_model(p, {"class": "X", "intercept": 1.5}, {"weights": np.array([1.0, 2.0])})
    meta, arrays = read_model(p, "X")
    assert meta["intercept"] == 1.5
    np.testing.assert_array_equal(arrays["weights"], [1.0, 2.0])
    for f in p.iterdir():
        data = f.read_bytes()
        assert not data.startswith(b"\x80"), f"{f} looks like a pickle"
        with pytest.raises(Exception):
            pickle.loads(data)
    assert not list(tmp_path.glob(".m.*")), "temporary directories are cleaned up"


def test_refuses_to_overwrite_unless_told(tmp_path):
    p = tmp_path / "m"
    write_model(p, {"class": "X"}, {"w": np.zeros(2)})
    with pytest.raises(FileExistsError, match="already exists"):
        write_model(p, {"class": "X"}, {"w": np.ones(2)})
    write_model(p, {"class": "X"}, {"w": np.ones(2)}, overwrite=True)
    assert read_model(p, "X")[1]["w"].tolist() == [1.0, 1.0]


def test_damaged_and_foreign_directories_are_refused(tmp_path):
    with pytest.raises(ModelFormatError, match="no metadata.json"):
        read_model(tmp_path, "X")
    p = tmp_path / "m"
    write_model(p, {"class": "X"}, {"w": np.zeros(3)})
    with pytest.raises(ModelFormatError, match="expected Y"):
        read_model(p, "Y")
    np.save(p / "w.npy", np.zeros(2))
    with pytest.raises(ModelFormatError, match="shape"):
        read_model(p, "X")
    np.save(p / "w.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFormatError, match="damaged array"):
        read_model(p, "X")
    meta = json.loads((p / "metadata.json").read_text())
    meta["formatVersion"] = 99
    (p / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="version 99"):
        read_model(p, "X")
    (p / "metadata.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="damaged metadata"):
        read_model(p, "X")


def test_a_failed_write_leaves_the_old_model_and_no_debris(tmp_path, monkeypatch):
    p = tmp_path / "m"
    write_model(p, {"class": "X"}, {"w": np.zeros(2)})
    real_save = np.save

    def failing_save(file, arr, **kw):
        if "v.npy" in str(file):
            raise OSError("disk full")
        return real_save(file, arr, **kw)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_model(p, {"class": "X"}, {"w": np.ones(2), "v": np.ones(3)}, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        write_model(tmp_path / "new", {"class": "X"}, {"v": np.ones(3)})
    assert read_model(p, "X")[1]["w"].tolist() == [0.0, 0.0]
    assert not (tmp_path / "new").exists()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m"]


def test_an_existing_empty_directory_is_written_into_as_mllib_does(tmp_path):
    empty = tmp_path / "made-by-mkdtemp"
    empty.mkdir()
    write_model(empty, {"class": "X"}, {"w": np.ones(2)})
    assert read_model(empty, "X")[1]["w"].tolist() == [1.0, 1.0]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        write_model(busy, {"class": "X"}, {"w": np.ones(2)})
    assert (busy / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("form", ["file://localhost{}", "file://{}", "file:{}"])
def test_file_uris_name_the_local_path(tmp_path, form):
    target = tmp_path / "uri model"
    write_model(form.format(str(target).replace(" ", "%20")), {"class": "X"}, {"w": np.ones(3)})
    assert read_model(target, "X")[1]["w"].tolist() == [1.0] * 3
    assert not (tmp_path / "localhost").exists()
