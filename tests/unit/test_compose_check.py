"""`make compose-check` validates docker-compose.yml with whichever Compose is installed:
the `docker compose` plugin, else `docker-compose`; neither is a clear error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")


def fake(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    path.chmod(0o755)


def compose_check(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """`make compose-check` with nothing but ``bin_dir`` on the PATH (make runs its recipes
    with /bin/sh, whose echo and command are built in)."""
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), "compose-check"],
        env={"PATH": str(bin_dir), "HOME": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


@pytest.mark.parametrize(
    ("plugin", "standalone", "runs"),
    [
        pytest.param(True, True, "docker compose config -q", id="plugin-preferred"),
        pytest.param(True, False, "docker compose config -q", id="plugin-only"),
        pytest.param(False, True, "docker-compose config -q", id="docker-without-plugin"),
        pytest.param(None, True, "docker-compose config -q", id="no-docker"),
    ],
)
def test_the_compose_that_is_installed_validates_the_file(
    tmp_path: Path, plugin: bool | None, standalone: bool, runs: str
) -> None:
    log = tmp_path / "calls"
    if plugin is not None:  # a docker CLI, with or without the compose plugin
        answer = "exit 0" if plugin else 'echo "unknown command: docker $1" >&2; exit 1'
        fake(
            tmp_path, "docker", f'echo "docker $*" >> {log}\n[ "$1" = compose ] || exit 0\n{answer}'
        )
    if standalone:
        fake(tmp_path, "docker-compose", f'echo "docker-compose $*" >> {log}')
    done = compose_check(tmp_path)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[-1] == runs
    assert "docker-compose.yml is valid" in done.stdout


def test_without_any_compose_it_says_what_to_install(tmp_path: Path) -> None:
    fake(tmp_path, "docker", 'echo "unknown command: docker $1" >&2; exit 1')
    done = compose_check(tmp_path)
    assert done.returncode != 0
    assert "neither 'docker compose' nor 'docker-compose' found" in done.stderr
    assert "apt-get install docker-compose" in done.stderr


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (Debian: apt-get install docker-compose)",
)
def test_the_real_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    assert compose is not None
    fake(tmp_path, "docker-compose", f'exec {compose} "$@"')
    done = compose_check(tmp_path)
    assert done.returncode == 0, done.stderr
