"""The result cache: round trips, reuse, and no partial files."""
import numpy as np
import pandas as pd
import pytest
import torch

from advmed import cache


def test_memo_round_trips_frames_arrays_and_tensors(tmp_cache):
    value = {"df": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "arr": np.arange(3.0),
             "t": torch.ones(2), "n": 3, "nested": [{"k": 1.5}]}
    cache.memo("t", {"k": 1}, lambda: value)
    back = cache.memo("t", {"k": 1}, lambda: pytest.fail("recomputed a cached result"))
    pd.testing.assert_frame_equal(back["df"], value["df"])
    np.testing.assert_array_equal(back["arr"], value["arr"])
    assert torch.equal(back["t"], value["t"]) and back["n"] == 3 and back["nested"] == [{"k": 1.5}]


def test_memo_key_change_recomputes(tmp_cache):
    calls = []
    for k in (1, 2, 1):
        cache.memo("t", {"k": k}, lambda: calls.append(k) or k)
    assert calls == [1, 2]


def test_interrupted_compute_leaves_no_file(tmp_cache):
    def boom(path):
        path.write_bytes(b"half")
        raise KeyboardInterrupt

    target = tmp_cache / "x" / "file.pt"
    with pytest.raises(KeyboardInterrupt):
        cache.atomic_write(target, boom)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_unsupported_value_is_refused_clearly(tmp_cache):
    with pytest.raises(TypeError, match="cannot memoise"):
        cache.memo("t", {}, lambda: object())


def test_saved_files_are_byte_identical_wherever_they_are_written(tmp_path):
    """Two writes of the same object give the same bytes (the archive inside a torch file
    must not be named after the random temporary file): two workers computing one cell
    write the same files."""
    import torch

    from advmed.cache import save_torch

    obj = {"w": torch.arange(6.0).reshape(2, 3), "note": "x"}
    save_torch(tmp_path / "a" / "f.pt", obj)
    save_torch(tmp_path / "b" / "f.pt", obj)
    assert (tmp_path / "a" / "f.pt").read_bytes() == (tmp_path / "b" / "f.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a" / "f.pt", weights_only=True)["w"], obj["w"])
