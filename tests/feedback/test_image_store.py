"""Image refs can be turned back into images; deletion and retention work per tenant."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dreamforge.image_store import ImageStore, load_ref
from dreamforge.images import encode_png
from dreamforge.world import get_sample


def test_save_load_delete_purge(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    data = encode_png(get_sample("test", 0, 64).image)
    ref = store.save("t1", data)
    assert store.save("t1", data) == ref and len(ref) == 64
    assert load_ref(ref, "t1", tmp_path / "images").size == (64, 64)
    with pytest.raises(KeyError):
        store.load("t2", ref)  # another tenant's image is not reachable by its ref
    with pytest.raises(ValueError):
        store.path("t1", "../../etc/passwd")
    other = store.save("t2", data)
    old = store.path("t2", other)
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    assert store.purge("t2", 86400) == 1 and not old.exists()
    assert store.purge("t1", 86400) == 0
    assert store.delete_tenant("t1") == 1
    assert not (tmp_path / "images" / "t1").exists()
