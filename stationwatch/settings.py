"""The one settings object, read from ``STATIONWATCH_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stationwatch.allocator import Choice
from stationwatch.errors import ConfigurationError

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/stationwatch"


def read_secret(path: Path) -> str:
    """A secret kept in a file (a Docker or Kubernetes secret): its text without the final
    newline."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the secret file {path}: {exc.strerror}") from exc


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced by ``password`` (quoted for a URL)."""
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class Settings(BaseSettings):
    """Everything configurable about stationwatch; built once at the entry point."""

    model_config = SettingsConfigDict(env_prefix="STATIONWATCH_", frozen=True, extra="ignore")

    kafka: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap URL(s)")
    database_url: SecretStr = Field(SecretStr(DEFAULT_DATABASE_URL), description="PostgreSQL URL")
    web_port: int = Field(6066, ge=1, le=65535, description="HTTP port of the worker")
    web_bind: str = Field("0.0.0.0", description="address the worker's HTTP server binds")  # noqa: S104 - a service port
    web_host: str | None = Field(
        None, description="host name other workers reach this one by (default: bind or hostname)"
    )
    partitions: int = Field(8, ge=1, le=1024, description="partitions of every topic created")
    # -- Kafka security (worker, notifier, simulator, topic creation) --------------------------
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the brokers"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (SASL_PLAINTEXT, SASL_SSL)"
    )
    kafka_username: str | None = Field(None, description="SASL user name")
    kafka_password: SecretStr | None = Field(None, description="SASL password")
    kafka_password_file: Path | None = Field(
        None, description="file holding the SASL password (instead of KAFKA_PASSWORD)"
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA certificates to trust (PEM; default: the system's)"
    )
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM), mTLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="client certificate's key (PEM)")
    kafka_ssl_check_hostname: bool = Field(
        True, description="check the broker's certificate names its host"
    )
    database_password_file: Path | None = Field(
        None,
        description="file holding the database password, put into DATABASE_URL (keeps it out "
        "of the environment)",
    )
    stale_after: float = Field(
        3.0,
        gt=0,
        description="heartbeat intervals of silence before stale (a station never heard from: "
        "counted from its registration)",
    )
    offline_after: float = Field(10.0, gt=0, description="heartbeat intervals before offline")
    timezone: str = Field(
        "Asia/Shanghai",
        description="zone of opening hours and holidays, and of every time shown (API, alerts, "
        "dead letters, notices, logs)",
    )

    # Extensions of the contract (all optional).
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=32,
        description="copies of every topic the worker creates (inputs, outputs, the tables' "
        "changelogs); unset: what the cluster allows, up to 3",
    )
    app_id: str = Field("stationwatch", description="Faust app id = consumer group")
    topic_prefix: str = Field("", description="prefix for every topic name (tests, staging)")
    store: str = Field(
        "rocksdb://",
        description="the live table's store: rocksdb:// (on disk in DATA_DIR: a restart reads "
        "only the changelog written since) or memory:// (the whole changelog at every start)",
    )
    data_dir: Path | None = Field(
        None,
        description="worker state directory (the live table with rocksdb://), one per worker; "
        "unset: the user's state directory, stationwatch/worker-<APP_ID>",
    )
    allocator: Choice = Field(
        "auto",
        description="the worker's memory allocator: jemalloc for every object (auto: where "
        "the library is installed; Debian's libjemalloc2) or python (Python's own)",
    )
    batch_size: int = Field(4000, ge=1, le=100_000, description="events per database batch")
    batch_within_s: float = Field(
        0.2, gt=0, le=60, description="longest wait to fill a batch, from its first event"
    )
    max_message_bytes: int = Field(65_536, ge=256, description="larger inputs are dead-lettered")
    max_clock_skew_s: float = Field(300.0, ge=0, description="how far in the future a time may be")
    max_message_age_s: float = Field(
        30 * 86_400.0,
        gt=0,
        description="heartbeats, occupancy counts and status events older than this when "
        "received are dead-lettered",
    )
    # 6 s: Apache Kafka's least by default (group.min.session.timeout.ms). A crashed
    # worker's stations are judged again after it, one rebalance and the takeover: within
    # 15 s. The group heartbeats run on the consumer's own thread, not on the agent's loop.
    broker_session_timeout_s: float = Field(
        6.0,
        gt=0,
        description="Kafka group session timeout: a crashed worker's or notifier's partitions "
        "move to the others after this long",
    )
    broker_heartbeat_interval_s: float = Field(2.0, gt=0, description="Kafka group heartbeat")
    recovery_heartbeats: int = Field(
        2, ge=1, le=100, description="consecutive heartbeats before a station is online again"
    )
    flap_changes: int = Field(4, ge=1, description="liveness changes in the window = flapping")
    flap_window_s: float = Field(1800.0, gt=0, description="flapping window")
    closed_grace_s: float = Field(
        900.0, ge=0, description="closed during opening hours this long before an alert"
    )
    alert_pending_s: dict[str, float] = Field(
        default_factory=lambda: {"over_capacity": 600.0},
        description="by alert kind, seconds its condition must hold before it fires "
        '(JSON, e.g. {"over_capacity": 600}); closed_during_hours waits CLOSED_GRACE_S',
    )
    alert_keep_firing_s: dict[str, float] = Field(
        default_factory=lambda: {"over_capacity": 300.0},
        description="by alert kind, seconds its condition must stay clear before a firing "
        'alert resolves (JSON, e.g. {"over_capacity": 300})',
    )
    caught_up_lag: int = Field(
        0,
        ge=0,
        description="most unprocessed heartbeats on a partition for judging it by the wall "
        "clock (more: judged by the newest heartbeat processed)",
    )
    tick_interval_s: float = Field(0.25, gt=0, le=10, description="liveness check period")
    consumer_fetch_wait_ms: int = Field(
        100,
        ge=1,
        le=1500,
        description="longest a broker may hold the worker's fetch while no record waits for "
        "it (Faust's own: 1500); the embedded broker answers a held fetch only when this "
        "time is up, even when records arrive meanwhile",
    )
    occupancy_fresh_s: float = Field(
        900.0, gt=0, description="occupancy counts older than this give no free_seats"
    )
    current_refresh_s: float = Field(
        1.0, gt=0, le=60, description="how often changed stations are written to station_current"
    )
    health_max_lag: int = Field(1000, ge=0, description="most unprocessed messages when healthy")
    holidays_file: Path | None = Field(
        None,
        description="YAML of public holidays and make-up working days merged over the "
        "chinese-calendar package (deploy/holidays.yaml); re-read when it changes",
    )
    holidays_warn_days: int = Field(
        60, ge=0, le=366, description="warn when the holiday calendar ends within this many days"
    )
    producer_max_batch_bytes: int = Field(
        16_384,
        ge=1,
        description="largest batch of the worker's Faust producer (its liveness ticks) and "
        "of the registry import; 1 sends one record per batch (the embedded broker reports "
        "end offsets correctly only for single-record batches); alerts and dead letters go "
        "in batches of 16 KiB, the live table's changelog in batches of up to 512 KiB, each "
        "partition's last record alone",
    )
    db_flavor: Literal["auto", "timescale", "postgres"] = Field(
        "auto",
        description="schema flavor of a new database: TimescaleDB when the server has it ready "
        "(auto), or insist on one; an existing schema keeps its flavor",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    notify_config: Path | None = Field(None, description="notifier routing YAML")
    notifier_port: int = Field(
        6068, ge=1, le=65535, description="HTTP port of the notifier (/metrics, /health)"
    )
    notify_max_attempts: int = Field(
        6, ge=1, le=100, description="tries at delivering a notice before it counts as failed"
    )
    notify_retry_base_s: float = Field(
        1.0, gt=0, le=600, description="first wait before a notice is tried again (doubles)"
    )
    notify_retry_max_s: float = Field(
        60.0, gt=0, le=3600, description="longest wait between two tries of a notice"
    )
    api_token: SecretStr | None = Field(None, description="bearer token for the HTTP API")
    patrol_interval_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="days between patrols of a station in service: one not inspected for "
        "longer is overdue (`stations overdue`, the stations_overdue view)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("alert_pending_s", "alert_keep_firing_s")
    @classmethod
    def _known_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        from typing import get_args

        from schemas.alerts import AlertKind

        kinds = get_args(AlertKind)
        for kind, seconds in value.items():
            if kind not in kinds:
                raise ValueError(f"unknown alert kind {kind!r} (known: {', '.join(kinds)})")
            if not 0 <= seconds <= 7 * 86_400:
                raise ValueError(f"{kind}: {seconds} s is not between 0 and 7 days")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in {"postgresql", "postgres"}:
            raise ValueError("must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_"):
            if not self.kafka_username:
                raise ValueError(
                    f"STATIONWATCH_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                    "STATIONWATCH_KAFKA_USERNAME"
                )
            if self.kafka_password is None and self.kafka_password_file is None:
                raise ValueError(
                    f"STATIONWATCH_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                    "STATIONWATCH_KAFKA_PASSWORD or STATIONWATCH_KAFKA_PASSWORD_FILE"
                )
        if (self.kafka_ssl_keyfile is None) != (self.kafka_ssl_certfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        if self.offline_after <= self.stale_after:
            raise ValueError("STATIONWATCH_OFFLINE_AFTER must be greater than STALE_AFTER")
        return self

    @property
    def dsn(self) -> str:
        """The database URL as a plain string, for drivers (with the password from
        ``DATABASE_PASSWORD_FILE`` when one is given)."""
        url = self.database_url.get_secret_value()
        if self.database_password_file is None:
            return url
        return with_password(url, read_secret(self.database_password_file))

    def kafka_secret(self) -> str | None:
        """The SASL password, from ``KAFKA_PASSWORD`` or ``KAFKA_PASSWORD_FILE``."""
        if self.kafka_password_file is not None:
            return read_secret(self.kafka_password_file)
        return self.kafka_password.get_secret_value() if self.kafka_password else None

    @property
    def worker_data_dir(self) -> Path:
        """Where this worker keeps its state: ``DATA_DIR``, or the user's state directory."""
        if self.data_dir is not None:
            return self.data_dir
        import platformdirs

        return Path(platformdirs.user_state_dir("stationwatch")) / f"worker-{self.app_id}"

    def topic(self, name: str) -> str:
        """The broker-side name of one of the contract's topics."""
        return f"{self.topic_prefix}{name}"
