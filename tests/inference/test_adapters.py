"""Adapter artifacts: deterministic packing, and unpacking that trusts nothing it is sent."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dreamforge.adapters import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterError,
    pack_adapter,
    read_adapter_archive,
    unpack_adapter,
)
from tests.inference.conftest import Adapter


def _fake_adapter(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text('{"peft_type": "LORA", "r": 8}')
    (root / WEIGHTS_FILE).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return root


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def test_packing_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    src = _fake_adapter(tmp_path / "a")
    (src / "README.md").write_text("PEFT writes this; it is left out")
    first = pack_adapter(src)
    (src / CONFIG_FILE).touch()  # a new mtime changes nothing
    assert pack_adapter(src) == first
    assert pack_adapter(_fake_adapter(tmp_path / "b")) == first  # same content, other place: same bytes
    dest = unpack_adapter(first, tmp_path / "out" / "sha")
    assert sorted(p.name for p in dest.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert (dest / CONFIG_FILE).read_bytes() == (src / CONFIG_FILE).read_bytes()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["sha"]  # no temporary directory left


def test_a_real_peft_adapter_packs(tiny_adapters: list[Adapter]) -> None:
    files = read_adapter_archive(tiny_adapters[0].packed)
    assert set(files) == {CONFIG_FILE, WEIGHTS_FILE}
    assert len(files[WEIGHTS_FILE]) > 1000
    assert tiny_adapters[0].packed != tiny_adapters[1].packed


def test_packing_refuses_what_is_not_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="missing"):
        pack_adapter(tmp_path)
    src = _fake_adapter(tmp_path / "a")
    (src / "pickle.bin").write_bytes(b"x")
    with pytest.raises(AdapterError, match=r"pickle\.bin"):
        pack_adapter(src)


@pytest.mark.parametrize(("archive", "message"), [
    (b"", "empty"),
    (b"this is not a tar archive at all" * 20, "not a valid tar"),
    (_tar(_file("../" + CONFIG_FILE, b"{}"), _file(WEIGHTS_FILE, b"w")), "only"),
    (_tar(_file("/etc/" + CONFIG_FILE, b"{}"), _file(WEIGHTS_FILE, b"w")), "only"),
    (_tar(_file("sub/" + WEIGHTS_FILE, b"w"), _file(CONFIG_FILE, b"{}")), "only"),
    (_tar(_file(CONFIG_FILE, b"{}"), _file("model.py", b"import os")), "only"),
    (_tar(_file(CONFIG_FILE, b"{}")), "lacks"),
    (_tar(_file(CONFIG_FILE, b"[1, 2]"), _file(WEIGHTS_FILE, b"w")), "JSON object"),
    (_tar(_file(CONFIG_FILE, b"{nope"), _file(WEIGHTS_FILE, b"w")), "not valid JSON"),
    (_tar(_file(CONFIG_FILE, b"{}"), _file(CONFIG_FILE, b"{}"), _file(WEIGHTS_FILE, b"w")), "twice"),
    (_tar(_file(CONFIG_FILE, b" " * (2 * 1024 * 1024)), _file(WEIGHTS_FILE, b"w")), "limit"),
])
def test_unpacking_rejects_unsafe_or_broken_archives(archive: bytes, message: str, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=message):
        unpack_adapter(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert list(tmp_path.iterdir()) == [] or all(not p.name.startswith(".") for p in tmp_path.iterdir())


def test_unpacking_rejects_links(tmp_path: Path) -> None:
    link = tarfile.TarInfo(WEIGHTS_FILE)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(AdapterError, match="regular file"):
        unpack_adapter(_tar(_file(CONFIG_FILE, b"{}"), (link, None)), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_unpacking_keeps_an_existing_copy(tmp_path: Path) -> None:
    packed = pack_adapter(_fake_adapter(tmp_path / "a"))
    dest = unpack_adapter(packed, tmp_path / "sha")
    before = (dest / WEIGHTS_FILE).stat().st_mtime_ns
    assert unpack_adapter(packed, tmp_path / "sha") == dest
    assert (dest / WEIGHTS_FILE).stat().st_mtime_ns == before
