"""Schemathesis over every operation of the gateway's OpenAPI document, against the
running platform: whatever the input, no 5xx, and every response (status code,
content type, body) is the one the document promises.

Runs with an admin key (which holds every scope) so requests get past auth and reach
validation and the services behind the gateway. The schemathesis CLI is used as a user
would run it in their own CI; its exit code is the verdict.

Requests are paced under the key's rate limit (600/minute, refilled per second; the CLI's
limiter counts per window, so "9/s" rather than "600/m"): above it a fifth of the cases
would be answered 429 by the gateway and never reach validation or the services.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.platform.conftest import RunningPlatform

pytestmark = pytest.mark.slow
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_fuzzing_every_operation_finds_no_server_error(running_platform: RunningPlatform, tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(cli), "run", f"{running_platform.url}/docs/openapi.json", "--checks", CHECKS,
         "--header", f"Authorization: Bearer {running_platform.admin_key}",
         "--max-examples", "30", "--phases", "examples,coverage,fuzzing", "--request-timeout", "10",
         "--rate-limit", "9/s",
         "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "operations" in result.stdout.lower()
