"""The committed dreamforge/v1 code must be exactly what proto/ generates."""

from __future__ import annotations

import filecmp
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from gen_proto import generate  # noqa: E402


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = tmp_path / "dreamforge" / "v1"
    committed = ROOT / "dreamforge" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"})
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    assert not mismatch and not errors, f"run `make proto`: stale generated files {mismatch or errors}"


def test_drift_check_fails_on_a_changed_proto(tmp_path: Path) -> None:
    """The check above can fail: a modified copy of proto/ generates different code."""
    import shutil

    import gen_proto

    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy)
    path = copy / "dreamforge" / "v1" / "common.proto"
    path.write_text(path.read_text().replace("string producer = 4;", "string producer = 4;\n  string extra = 5;"))
    original = gen_proto.PROTO_DIR
    gen_proto.PROTO_DIR = copy
    try:
        gen_proto.generate(tmp_path)
    finally:
        gen_proto.PROTO_DIR = original
    regenerated = (tmp_path / "dreamforge/v1/common_pb2.py").read_bytes()
    assert regenerated != (ROOT / "dreamforge/v1/common_pb2.py").read_bytes()
