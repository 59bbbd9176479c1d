"""Secrets kept in files (a robot's signing secret, an SMTP password), read once at start."""

from __future__ import annotations

from pathlib import Path

from stationwatch.errors import ConfigurationError


def read_secret(path: str | Path) -> str:
    """The file's text without the newline an editor or ``echo`` leaves at its end."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the secret file {path}: {exc}") from exc
