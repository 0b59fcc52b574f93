"""The quick-starts in examples/ run as a user runs them, against a running platform, and print
right answers about an image of the default model's world (`dreamforge sample`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.platform.conftest import RunningPlatform

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DREAMFORGE = Path(sys.executable).parent / "dreamforge"


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """Test image 3 (a small orange circle and a small orange triangle) and its ground truth."""
    path = tmp_path_factory.mktemp("examples") / "photo.png"
    shown = subprocess.run([str(DREAMFORGE), "sample", str(path)], capture_output=True, text=True, check=True)
    return path, json.loads(shown.stdout)


@pytest.fixture(scope="module")
def app_env(running_platform: RunningPlatform) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {running_platform.admin_key}"}
    tenant = httpx.post(f"{running_platform.url}/v1/admin/tenants", headers=admin, json={"name": "examples"})
    assert tenant.status_code == 201, tenant.text
    key = httpx.post(f"{running_platform.url}/v1/admin/keys", headers=admin,
                     json={"tenant_id": tenant.json()["id"], "scopes": ["app"]})
    assert key.status_code == 201, key.text
    return {**os.environ, "DREAMFORGE_URL": running_platform.url, "DREAMFORGE_API_KEY": key.json()["key"]}


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def check_answers(out: str, truth: dict[str, object]) -> None:
    """Every quick-start asks the same things of test image 3."""
    assert re.search(r"^query: orange\b", out, re.M) or '"answer":"orange"' in out, out  # the circle's colour
    circle = next(o for o in truth["objects"] if o["name"] == "orange circle")  # type: ignore[attr-defined]
    x0, y0, x1, y1 = circle["box"]
    points = [(float(x), float(y)) for x, y in re.findall(r'"x": ?([0-9.]+), ?"y": ?([0-9.]+)', out)]
    assert points and all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in points), (circle, out)
    assert "orange circle" in out.lower() and "orange triangle" in out.lower(), out  # the caption


def test_the_python_quickstart(photo: tuple[Path, dict[str, object]], app_env: dict[str, str]) -> None:
    out = run([sys.executable, "examples/quickstart.py", str(photo[0])], app_env)
    check_answers(out, photo[1])
    assert re.search(r"^stream: orange$", out, re.M) and "rated: thumbs up" in out, out


def test_the_grpc_quickstart(photo: tuple[Path, dict[str, object]], app_env: dict[str, str],
                             running_platform: RunningPlatform) -> None:
    grpc_at = f"127.0.0.1:{running_platform.env['DREAMFORGE_GATEWAY_GRPC_PORT']}"
    out = run([sys.executable, "examples/quickstart_grpc.py", str(photo[0])], {**app_env, "DREAMFORGE_GRPC": grpc_at})
    check_answers(out, photo[1])
    assert re.search(r"^stream: orange$", out, re.M), out
    assert re.search(r"^query again: orange \(replayed, same request id\)$", out, re.M), out


def test_the_javascript_quickstart(photo: tuple[Path, dict[str, object]], app_env: dict[str, str]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the JavaScript quick-start needs node 18+ (or a browser)")
    check_answers(run([node, "examples/quickstart.mjs", str(photo[0])], app_env), photo[1])


def test_the_curl_quickstart(photo: tuple[Path, dict[str, object]], app_env: dict[str, str]) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    out = run(["bash", "examples/quickstart.sh", str(photo[0])], app_env)
    check_answers(out, photo[1])
    assert '"chunk":"orange"' in out and '"completed":true' in out, out
