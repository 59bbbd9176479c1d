"""Kafka security settings become the same credentials for every client; secrets come from the
environment or files and never show in a settings dump."""

# made-up passwords and tokens throughout, configured to be searched for
# ruff: noqa: S105, S106

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from stationwatch.errors import ConfigurationError
from stationwatch.kafka_auth import broker_credentials, client_auth
from stationwatch.settings import Settings, with_password


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type] # pydantic-settings takes the fields


@pytest.fixture
def ca_files(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    client = ca.issue_cert("stationwatch-client")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    return files


def test_plaintext_needs_nothing() -> None:
    assert broker_credentials(settings()) is None
    assert client_auth(settings()) == {}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_plaintext(mechanism: str) -> None:
    auth = client_auth(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism=mechanism,
            kafka_username="stationwatch",
            kafka_password="pw-1",
        )
    )
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == mechanism
    assert auth["sasl_plain_username"] == "stationwatch"
    assert auth["sasl_plain_password"] == "pw-1"
    assert auth["ssl_context"] is None


def test_sasl_over_tls_with_the_password_from_a_file(
    tmp_path: Path, ca_files: dict[str, Path]
) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("from-a-file\n", encoding="utf-8")
    auth = client_auth(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_username="stationwatch",
            kafka_password_file=secret,
            kafka_ssl_cafile=ca_files["ca"],
        )
    )
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_plain_password"] == "from-a-file"
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_tls_with_a_client_certificate(ca_files: dict[str, Path]) -> None:
    auth = client_auth(
        settings(
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=ca_files["ca"],
            kafka_ssl_certfile=ca_files["cert"],
            kafka_ssl_keyfile=ca_files["key"],
            kafka_ssl_check_hostname=False,
        )
    )
    assert auth["security_protocol"] == "SSL"
    assert not auth["ssl_context"].check_hostname


def test_unreadable_tls_files_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Kafka TLS files"):
        client_auth(
            settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
        )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs STATIONWATCH_KAFKA_USERNAME"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "u"},
            "needs STATIONWATCH_KAFKA_PASSWORD or STATIONWATCH_KAFKA_PASSWORD_FILE",
        ),
        ({"kafka_ssl_certfile": "/c.pem"}, "go together"),
    ],
)
def test_incomplete_security_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_secrets_never_show_in_the_settings() -> None:
    configured = settings(
        database_url="postgresql://sw:db-secret-1@db:5432/stationwatch",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="stationwatch",
        kafka_password="kafka-secret-2",
        api_token="api-secret-3",
    )
    shown = f"{configured!r} {configured} {configured.model_dump()}"
    for secret in ("db-secret-1", "kafka-secret-2", "api-secret-3"):
        assert secret not in shown


def test_the_database_password_from_a_file_is_put_into_the_url(tmp_path: Path) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("p@ss:w/rd\n", encoding="utf-8")
    configured = settings(
        database_url="postgresql://sw@db.example:5433/stationwatch?sslmode=require",
        database_password_file=secret,
    )
    assert (
        configured.dsn
        == "postgresql://sw:p%40ss%3Aw%2Frd@db.example:5433/stationwatch?sslmode=require"
    )


def test_a_missing_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    configured = settings(database_password_file=tmp_path / "nope")
    with pytest.raises(ConfigurationError, match="cannot read the secret file"):
        _ = configured.dsn


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql://u:x@h/db"),
        ("postgresql://u:old@h:1/db", "postgresql://u:x@h:1/db"),
        ("postgresql://u@[::1]:5432/db", "postgresql://u:x@[::1]:5432/db"),
    ],
)
def test_with_password(url: str, expected: str) -> None:
    assert with_password(url, "x") == expected
