"""Schemathesis over every operation of the gateway's OpenAPI document, against the
running platform: whatever the input, no 5xx, and every response (status code,
content type, body) is the one the document promises.

Runs with an admin key (which holds every scope) so requests get past auth and reach
validation and the services behind the gateway. The schemathesis CLI is used as a user
would run it in their own CI; its exit code is the verdict.

The fuzzing key is an admin key of the admin tenant with its own rate limit (6,000/minute),
and requests are paced under it (the CLI's limiter counts per window, so "40/s" rather
than "6000/m"): above it cases would be answered 429 by the gateway and never reach
validation or the services. With about ninety operations, fifteen examples each plus the
coverage phase keep the run within a few minutes on two cores. A request may take up to a
minute: saving a tuning checkpoint starts the finetune's worker (it loads the model) when
it was idle; a hang still fails the run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.platform.conftest import RunningPlatform

pytestmark = pytest.mark.slow
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.timeout(1500)
def test_fuzzing_every_operation_finds_no_server_error(running_platform: RunningPlatform, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {running_platform.admin_key}"}
    me = httpx.get(f"{running_platform.url}/v1/whoami", headers=admin).json()
    created = httpx.post(f"{running_platform.url}/v1/admin/keys", headers=admin, json={
        "tenant_id": me["tenant_id"], "scopes": ["admin"], "name": "fuzz", "rate_limit_per_minute": 6000})
    assert created.status_code == 201, created.text
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(cli), "run", f"{running_platform.url}/docs/openapi.json", "--checks", CHECKS,
         "--header", f"Authorization: Bearer {created.json()['key']}",
         "--max-examples", "15", "--phases", "examples,coverage,fuzzing", "--request-timeout", "60",
         "--rate-limit", "40/s",
         "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=1400, cwd=tmp_path)
    out = result.stdout
    problems = min((i for i in (out.find("= ERRORS ="), out.find("= FAILURES =")) if i >= 0), default=len(out) - 6000)
    assert result.returncode == 0, out[max(problems - 200, 0):][:12000] + result.stderr[-2000:]
    assert "operations" in result.stdout.lower()
