"""Publish one changed registry record (a lifecycle command) to ``station.registry``, the way an
import publishes its rows (:func:`stationwatch.registry.sheet_registry.publish`): under
``STATIONWATCH_TOPIC_PREFIX``, key = station id, acknowledged by every in-sync replica."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.registry import StationProfile
from stationwatch.registry.sheet_registry import publish as publish_records
from stationwatch.settings import Settings


async def publish(settings: Settings, records: Iterable[StationProfile]) -> None:
    """Send the records and wait until the broker holds every one of them."""
    await publish_records(settings, [(r.station_id, r) for r in records], lambda _sent: None)
