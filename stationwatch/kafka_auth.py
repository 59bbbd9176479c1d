"""How every Kafka client of stationwatch connects and authenticates: one description (Faust's
credentials) built from the settings, given to the worker's Faust app and turned into the same
keyword arguments for the notifier's, the simulator's and the topic creator's aiokafka clients."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from stationwatch.broker import BROKER_HINT, bootstrap_servers, quiet_client_logs
from stationwatch.errors import BrokerUnavailableError, ConfigurationError
from stationwatch.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verify the brokers against ``KAFKA_SSL_CAFILE`` (or the system's CAs); present a client
    certificate when one is configured."""
    cafile = settings.kafka_ssl_cafile
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if settings.kafka_ssl_certfile is not None:
            keyfile = settings.kafka_ssl_keyfile
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile), str(keyfile) if keyfile else None
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"Kafka TLS files: {exc}") from exc
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's credentials for ``settings`` (None: plaintext, no authentication)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_username,
        password=settings.kafka_secret(),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def client_auth(settings: Settings) -> Mapping[str, Any]:
    """Keyword arguments for an aiokafka producer, consumer or admin client."""
    credentials = broker_credentials(settings)
    if credentials is None:
        return {}
    return dict(credentials_to_aiokafka_auth(credentials))


async def start_offset_reader(settings: Settings) -> AIOKafkaConsumer:
    """A started consumer on connections of its own, for asking the brokers for partitions'
    end offsets and the worker group's committed offsets. It names the group but never joins
    it (it subscribes to nothing, is assigned nothing and commits nothing)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings.kafka),
        client_id=f"{settings.app_id}-end-offsets",
        group_id=settings.app_id,
        enable_auto_commit=False,
        **client_auth(settings),
    )
    await _start(reader, settings)
    return reader


async def start_record_reader(settings: Settings) -> AIOKafkaConsumer:
    """A started consumer outside any group, on connections of its own, for reading given
    offsets of given partitions again (it is assigned and seeks per read)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings.kafka),
        client_id=f"{settings.app_id}-reread",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_auth(settings),
    )
    await _start(reader, settings)
    return reader


async def start_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """A started producer for ``settings``' brokers, with their security settings; one line
    (:class:`BrokerUnavailableError`) when the brokers do not answer."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(settings.kafka), **options, **client_auth(settings)
    )
    await _start(producer, settings)
    return producer


async def _start(client: AIOKafkaConsumer | AIOKafkaProducer, settings: Settings) -> None:
    """Start ``client`` quietly; stopped again, and one clear line, when the brokers do not
    answer."""
    try:
        with quiet_client_logs():
            await client.start()
    except KafkaError as exc:
        await client.stop()
        raise BrokerUnavailableError(
            f"the Kafka broker at {settings.kafka} does not answer ({exc}): {BROKER_HINT}"
        ) from exc
