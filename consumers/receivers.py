"""What a receiver is: a name and exactly one channel with that channel's settings, plus the
value types every part of the notifier configuration is written in (durations, URLs, e-mail
addresses, secret files).

Part of the configuration :mod:`consumers.config` loads (and re-exports); the channels build
themselves from these models. Secret files are paths, resolved against the configuration
file's folder and read by the channels, never here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

ChannelKind = Literal["webhook", "wecom", "dingtalk", "email", "alertmanager", "console"]
CHANNELS: tuple[ChannelKind, ...] = get_args(ChannelKind)
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\s\[\]]+):(\d{1,5})")


def parse_duration(value: object) -> timedelta:
    """``30s``, ``5m``, ``4h``, ``1h30m`` → timedelta (a bare number is refused: no unit)."""
    if isinstance(value, timedelta):
        return value
    text = value.strip() if isinstance(value, str) else ""
    found = _DURATION.fullmatch(text) if text else None
    if found is None:
        raise ValueError(f"not a duration: {value!r}; write e.g. 30s, 5m, 4h or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def format_duration(value: timedelta) -> str:
    total = int(value.total_seconds())
    text = "".join(f"{n}{unit}" for n, unit in _split(total) if n)
    return text or "0s"


def _split(total: int) -> tuple[tuple[int, str], ...]:
    return ((total // 3600, "h"), (total % 3600 // 60, "m"), (total % 60, "s"))


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not an http:// or https:// URL")  # the value may hold a key: not shown
    return value


def _address(value: str) -> str:
    if "@" not in parseaddr(value)[1]:
        raise ValueError(f"not an e-mail address: {value!r}")
    return value


def _secret_path(value: Path, info: ValidationInfo) -> Path:
    if str(value) in ("", "."):
        raise ValueError("a path to a file holding the secret")
    base = (info.context or {}).get("base_dir")
    return Path(base) / value if base is not None and not value.is_absolute() else value


def _listify(value: object) -> object:
    return [value] if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Url = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_url)]
Address = Annotated[str, AfterValidator(_address)]
SecretFile = Annotated[Path, AfterValidator(_secret_path)]


class ConfigModel(BaseModel):
    """Every part of the configuration: frozen, and a misspelt field is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class WebhookConfig(ConfigModel):
    url: Url
    timeout: PositiveDuration = timedelta(seconds=10)
    headers: dict[str, str] = Field(default_factory=dict)


class WecomConfig(ConfigModel):
    url: Url


class DingtalkConfig(ConfigModel):
    url: Url
    secret_file: SecretFile | None = None  # the robot's signing secret ("加签")


class EmailConfig(ConfigModel):
    to: Annotated[tuple[Address, ...], BeforeValidator(_listify), Field(min_length=1)]
    from_: Address = Field(alias="from")
    smarthost: str  # "host:port"
    starttls: bool = True  # upgrade a plain connection (port 587)
    tls: bool = False  # implicit TLS from the first byte (port 465)
    username: str | None = None
    password_file: SecretFile | None = None

    @model_validator(mode="before")
    @classmethod
    def _implicit_tls(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("tls") is True and "starttls" not in data:
            return {**data, "starttls": False}  # tls: true alone means implicit TLS only
        return data

    @field_validator("smarthost")
    @classmethod
    def _host_port(cls, value: str) -> str:
        found = _HOST_PORT.fullmatch(value)
        if found is None or not 0 < int(found.group(2)) < 65536:
            raise ValueError(f"not host:port: {value!r}; e.g. smtp.example.org:587")
        return value

    @model_validator(mode="after")
    def _sound(self) -> EmailConfig:
        if self.tls and self.starttls:
            raise ValueError("choose starttls (port 587) or tls (implicit TLS, port 465)")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        return self

    @property
    def security(self) -> Literal["starttls", "tls", "none"]:
        return "tls" if self.tls else "starttls" if self.starttls else "none"

    @property
    def host(self) -> str:
        return self.smarthost.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.smarthost.rpartition(":")[2])


class AlertmanagerConfig(ConfigModel):
    url: Url  # an Alertmanager's base URL; alerts go to /api/v2/alerts


class ConsoleConfig(ConfigModel):
    """Print notices (the demo)."""


ChannelConfig = (
    WebhookConfig | WecomConfig | DingtalkConfig | EmailConfig | AlertmanagerConfig | ConsoleConfig
)


class ReceiverConfig(ConfigModel):
    name: Name
    webhook: WebhookConfig | None = None
    wecom: WecomConfig | None = None
    dingtalk: DingtalkConfig | None = None
    email: EmailConfig | None = None
    alertmanager: AlertmanagerConfig | None = None
    console: ConsoleConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_channel(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        found = [k for k in CHANNELS if k in data and (data[k] is not None or k == "console")]
        if len(found) != 1:
            said = f"found {len(found)}: {', '.join(found)}" if found else "found none"
            raise ValueError(f"a receiver takes exactly one of {', '.join(CHANNELS)}; {said}")
        return {**data, "console": {}} if data.get("console", 0) is None else data

    @property
    def kind(self) -> ChannelKind:
        return next(kind for kind in CHANNELS if getattr(self, kind) is not None)

    @property
    def channel(self) -> ChannelConfig:
        settings: ChannelConfig = getattr(self, self.kind)
        return settings
