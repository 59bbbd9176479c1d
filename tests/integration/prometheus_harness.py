"""A real Prometheus (Debian's `prometheus`) for tests: started on a free port with a generated
configuration and a storage directory of its own, queried through its HTTP API."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from stationwatch.broker import free_port
from tests.integration.harness import wait_for


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    return shutil.which("promtool")


def promtool_check_metrics(text: str) -> tuple[int, str]:
    """``promtool check metrics`` over an exposition: its exit status and what it said."""
    binary = promtool_binary()
    assert binary is not None
    done = subprocess.run(
        [binary, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


@dataclass
class PrometheusProcess:
    """Scrapes ``jobs`` (job name → host:port targets, each labelled service=stationwatch as in
    deploy/prometheus.yml) every ``scrape_interval_s``."""

    directory: Path
    jobs: dict[str, list[str]]
    scrape_interval_s: int = 1
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        binary = prometheus_binary()
        assert binary is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        interval = f"{self.scrape_interval_s}s"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": targets, "labels": {"service": "stationwatch"}}],
                }
                for job, targets in self.jobs.items()
            ],
        }
        config_path = self.directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.log_path = self.directory / "prometheus.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def _get(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get(path, params=params)
        body = response.json()
        assert body.get("status") == "success", (path, params, body)
        return body["data"]

    async def wait_scraping(self, timeout_s: float = 30) -> None:
        """Until Prometheus is ready and has scraped every target successfully."""

        async def all_up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log()[-3000:]}")
            try:
                data = await self._get("/api/v1/targets")
            except httpx.HTTPError:
                return False
            active = data["activeTargets"]
            wanted = sum(len(t) for t in self.jobs.values())
            return len(active) == wanted and all(t["health"] == "up" for t in active)

        await wait_for(all_up, timeout_s=timeout_s, what="prometheus scraping every target")

    async def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query", query=expr, time=at)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def query_range(
        self, expr: str, start: float, end: float, step_s: float
    ) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step_s)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = await self._get(f"/api/v1/label/{label}/values", **{"match[]": match})
        return values

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
