"""`station.registry`: station master data kept by the operators."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from schemas.common import STORABLE, ShortText, StationId, WireModel, WireTime

Category = Literal["standard", "smart_24h", "truck_driver", "business_circle_24h"]
Host = Literal[
    "party_service_center",
    "restaurant",
    "courier_station",
    "supermarket",
    "business_circle",
    "market",
    "other",
]
BASIC_SERVICES = (
    "water",
    "hot_meal",
    "charging",
    "rest",
    "rain_shelter",
    "warming",
    "cooling",
    "toilet",
)
EXTENDED_SERVICES = (
    "convenience",
    "legal_aid",
    "hardship_aid",
    "counseling",
    "washing",
    "dining_area",
    "medicine",
    "wifi",
    "reading",
)
Service = Literal[
    "water",
    "hot_meal",
    "charging",
    "rest",
    "rain_shelter",
    "warming",
    "cooling",
    "toilet",
    "convenience",
    "legal_aid",
    "hardship_aid",
    "counseling",
    "washing",
    "dining_area",
    "medicine",
    "wifi",
    "reading",
]
Lifecycle = Literal["active", "temporarily_closed", "decommissioned"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ClockTime = Annotated[str, StringConstraints(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]


def minutes(clock: str) -> int:
    """Minutes since midnight of an ``HH:MM`` clock time (``24:00`` is 1440)."""
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


class Location(WireModel):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class OpeningHours(WireModel):
    """Weekly hours in station-local time; an interval whose end is before its start runs
    past midnight into the next day."""

    always_open: bool = False
    weekly: dict[Weekday, list[tuple[ClockTime, ClockTime]]] = Field(default_factory=dict)
    holidays_open: bool = False

    @field_validator("weekly")
    @classmethod
    def _intervals_not_empty(
        cls, weekly: dict[Weekday, list[tuple[str, str]]]
    ) -> dict[Weekday, list[tuple[str, str]]]:
        for day, intervals in weekly.items():
            for start, end in intervals:
                # a clock time has one spelling (ClockTime): the same minute, the same text
                if start == end or start == "24:00":
                    raise ValueError(f"{day}: interval {start}-{end} is empty")
        return weekly


class StationProfile(WireModel):
    """One station's master data.

    Every text holds no NUL (PostgreSQL stores it in `text` columns and in `jsonb`);
    ``updated_at`` is a :data:`~schemas.common.WireTime` and may be long past (master data
    changes rarely), but not in the future beyond the allowed clock skew (``streams.decode``).
    """

    station_id: StationId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200), STORABLE]
    district: ShortText = ""
    street: ShortText = ""
    category: Category = "standard"
    host: Host = "other"
    location: Location
    services: list[Service] = Field(default_factory=list, max_length=32)
    capacity: Annotated[int, Field(ge=0, le=100_000)] | None = None
    opening_hours: OpeningHours
    heartbeat_interval_s: Annotated[int, Field(ge=1, le=86_400)] | None = None
    contact_phone: Annotated[str, StringConstraints(max_length=32), STORABLE] | None = None
    lifecycle: Lifecycle = "active"
    updated_at: WireTime
    # -- beyond the contract's fields (all optional) -------------------------------------
    # who answers for the station on the ground
    responsible_person: Annotated[str, StringConstraints(max_length=100), STORABLE] | None = None
    responsible_phone: Annotated[str, StringConstraints(max_length=32), STORABLE] | None = None
    # a temporary closure that ends by itself: `temporarily_closed` until then, `active` after
    closed_until: WireTime | None = None
    closure_reason: Annotated[str, StringConstraints(max_length=500), STORABLE] | None = None
    # who made this change, and how (a command, an import file): kept in `station_history`
    changed_by: ShortText | None = None
    changed_via: Annotated[str, StringConstraints(max_length=300), STORABLE] | None = None

    @model_validator(mode="after")
    def _services_unique(self) -> StationProfile:
        if len(set(self.services)) != len(self.services):
            raise ValueError("services: listed more than once")
        return self

    @model_validator(mode="after")
    def _closure_is_temporary(self) -> StationProfile:
        if self.closed_until is not None and self.lifecycle != "temporarily_closed":
            raise ValueError("closed_until: only a temporarily_closed station has one")
        return self
