"""Pieces shared by every message model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

STATION_ID_PATTERN = r"^[A-Z]{2,4}-[0-9A-Z]{1,12}$"

StationId = Annotated[str, StringConstraints(pattern=STATION_ID_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=64)]


class WireModel(BaseModel):
    """Base of every message: immutable, strict types, unknown fields ignored (contract)."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        strict=True,
        allow_inf_nan=False,
        validate_default=True,
    )
