"""The notifier's command line: a bad configuration stops it at once, naming file, line and
field; --check-config validates without starting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BAD = """route:
  receiver: ops
receivers:
  - name: ops
    webhook: {url: "http://127.0.0.1:1/hook"}
  - name: duty
    webhook: {url: "not a url"}
"""
GOOD = """route:
  receiver: ops
  routes:
    - match: {street: 空港街道}
      receiver: ops
receivers:
  - name: ops
    webhook: {url: "http://127.0.0.1:1/hook"}
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stationwatch.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_names_the_line_and_field_of_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(BAD, encoding="utf-8")
    done = run("notifier", "--check-config", str(path))
    assert done.returncode == 2
    assert f"{path}:7: receivers.1.webhook.url" in done.stderr, done.stderr


def test_check_config_prints_the_routes_of_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(GOOD, encoding="utf-8")
    done = run("notifier", "--check-config", str(path))
    assert done.returncode == 0, done.stderr
    assert "valid; 1 receivers" in done.stdout
    assert '{}/0{street="空港街道"} → ops' in done.stdout


def test_the_notifier_stops_at_start_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(BAD, encoding="utf-8")
    done = run("notifier", env={"STATIONWATCH_NOTIFY_CONFIG": str(path)})
    assert done.returncode == 2
    assert f"{path}:7" in done.stderr


def test_the_notifier_without_a_configuration_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "STATIONWATCH_NOTIFY_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "stationwatch.cli", "notifier"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "STATIONWATCH_NOTIFY_CONFIG is not set" in done.stderr
