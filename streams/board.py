"""The live board (`GET /` and `GET /board.json`): what the page needs of every station, the
counts, and a local map projection. Pure: no aiohttp, no Faust.

Each worker's API server answers with the stations it holds (:func:`local_items`); the server
asked merges every worker's part (:func:`merge_board`), counts, sorts the offline stations and
projects the positions onto a flat map of the district (:class:`Projection`), so the page only
draws. No map tiles: an equirectangular projection around the stations' bounding box, with the
east-west scale corrected by cos(latitude), which over a district (tens of kilometres) is off
by less than a pixel.

The page itself (``streams/board/``: HTML, CSS, JS, no build step) is package data, read once
by :func:`load_assets`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from streams.query import EARTH_RADIUS_M, Entry

LIVENESS = ("online", "stale", "offline", "unknown", "not_monitored")
MAP_SIZE = 1000.0  # map units along the longer side of the stations' extent
MARGIN = 30.0  # map units around the stations
MIN_EXTENT_M = 2000.0  # the least extent of the map, each way
DATA_OLD_AFTER_S = 5.0  # a worker that has not reported for this long serves old data
ASSETS = {  # URL path → (file in streams/board/, content type)
    "/": ("index.html", "text/html"),
    "/board/board.css": ("board.css", "text/css"),
    "/board/board.js": ("board.js", "text/javascript"),
}


def load_assets() -> dict[str, tuple[bytes, str]]:
    """The page's files, by URL path, with their content types."""
    folder = resources.files("streams").joinpath("board")
    return {
        path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in ASSETS.items()
    }


def in_zone(text: str | None, zone: ZoneInfo) -> str | None:
    """An ISO time as stored, in the answer's zone (the board shows local wall-clock times)."""
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(zone).isoformat()


@dataclass
class _Cached:
    raw: bytes
    item: dict[str, Any]


class BoardItems:
    """Board items of a worker's stations, decoded once per change of a station's state (the
    page asks every 2 s; most stations have not changed since)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._cache: dict[str, _Cached] = {}

    def items(self, entries: Iterable[Entry]) -> list[dict[str, Any]]:
        found: dict[str, _Cached] = {}
        for entry in entries:
            cached = self._cache.get(entry.station_id)
            if cached is None or cached.raw is not entry.raw:
                cached = _Cached(entry.raw, board_item(entry, self.zone))
            found[entry.station_id] = cached
        self._cache = found  # stations gone since are forgotten
        return [cached.item for cached in found.values()]


def board_item(entry: Entry, zone: ZoneInfo) -> dict[str, Any]:
    """What the board shows of one station, times in ``zone``."""
    state = entry.state
    profile = state.get("profile") or {}
    return {
        "id": entry.station_id,
        "name": profile.get("name"),
        "street": entry.street,
        "lat": entry.lat,
        "lon": entry.lon,
        "liveness": entry.liveness,
        "liveness_since": in_zone(state.get("liveness_since"), zone),
        "last_heartbeat_at": in_zone(state.get("last_heartbeat_at"), zone),
    }


def local_board(items: list[dict[str, Any]], report_age_s: float) -> dict[str, Any]:
    """One worker's part of the board: its stations and how old its worker's last report is."""
    return {
        "stations": items,
        "report_age_s": round(report_age_s, 1) if math.isfinite(report_age_s) else None,
    }


@dataclass(frozen=True)
class Projection:
    """Equirectangular around a bounding box: x east, y south (SVG's y grows downwards)."""

    lat_max: float
    lon_min: float
    cos_lat: float  # of the box's middle latitude
    units_per_m: float
    width: float
    height: float

    @classmethod
    def fit(cls, points: Iterable[tuple[float, float]]) -> Projection | None:
        """The projection that puts ``points`` (lat, lon) on a map of ``MAP_SIZE`` units along
        its longer side, with a margin; None without points."""
        placed = list(points)
        if not placed:
            return None
        lats = [lat for lat, _ in placed]
        lons = [lon for _, lon in placed]
        lat_min, lat_max, lon_min, lon_max = min(lats), max(lats), min(lons), max(lons)
        cos_lat = math.cos(math.radians((lat_min + lat_max) / 2))
        metres_per_degree = math.radians(1) * EARTH_RADIUS_M
        east_m = (lon_max - lon_min) * metres_per_degree * cos_lat
        north_m = (lat_max - lat_min) * metres_per_degree
        # a single station, or a line of them, still gets a map of some width and height
        east_span, north_span = max(east_m, MIN_EXTENT_M), max(north_m, MIN_EXTENT_M)
        pad_east, pad_north = (east_span - east_m) / 2, (north_span - north_m) / 2
        units_per_m = MAP_SIZE / max(east_span, north_span)
        return cls(
            lat_max=lat_max + pad_north / metres_per_degree,
            lon_min=lon_min - pad_east / (metres_per_degree * cos_lat),
            cos_lat=cos_lat,
            units_per_m=units_per_m,
            width=round(east_span * units_per_m + 2 * MARGIN, 1),
            height=round(north_span * units_per_m + 2 * MARGIN, 1),
        )

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        metres_per_degree = math.radians(1) * EARTH_RADIUS_M
        x = (lon - self.lon_min) * metres_per_degree * self.cos_lat * self.units_per_m
        y = (self.lat_max - lat) * metres_per_degree * self.units_per_m
        return round(x + MARGIN, 1), round(y + MARGIN, 1)

    def describe(self) -> dict[str, float]:
        return {
            "width": self.width,
            "height": self.height,
            "metres_per_unit": round(1 / self.units_per_m, 3),
        }


def _since_key(item: dict[str, Any]) -> str:
    return item.get("liveness_since") or ""


def merge_board(
    answers: list[dict[str, Any]], missing: list[int], now: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    """Every worker's part as one board: stations by id with map positions, counts by
    liveness, the offline stations (most recently offline first), street labels, and how old
    the data may be."""
    stations = sorted(
        (item for answer in answers for item in answer["stations"]), key=lambda item: item["id"]
    )
    projection = Projection.fit(
        (s["lat"], s["lon"]) for s in stations if s["lat"] is not None and s["lon"] is not None
    )
    counts: Counter[str] = Counter({liveness: 0 for liveness in LIVENESS})
    streets: dict[str, list[tuple[float, float]]] = {}
    placed: list[dict[str, Any]] = []
    for station in stations:
        item = {**station, "x": None, "y": None}
        counts[item["liveness"]] += 1
        if projection is not None and item["lat"] is not None and item["lon"] is not None:
            item["x"], item["y"] = projection.xy(item["lat"], item["lon"])
            streets.setdefault(item["street"] or "", []).append((item["x"], item["y"]))
        placed.append(item)
    offline = sorted(
        (s for s in placed if s["liveness"] == "offline"), key=_since_key, reverse=True
    )
    ages = [answer.get("report_age_s") for answer in answers]
    known_ages = [age for age in ages if age is not None]
    return {
        "as_of": now.astimezone(zone).isoformat(),
        "timezone": zone.key,
        "total": len(placed),
        "by_liveness": dict(counts),
        "stations": placed,
        "offline": [s["id"] for s in offline],
        "unplaced": sum(1 for s in placed if s["x"] is None),
        "map": projection.describe() if projection is not None else None,
        "streets": [
            {
                "name": name,
                "x": round(sum(x for x, _ in spots) / len(spots), 1),
                "y": round(sum(y for _, y in spots) / len(spots), 1),
                "stations": len(spots),
            }
            for name, spots in sorted(streets.items())
            if name
        ],
        # the oldest worker report: unknown (None) while a worker has not reported yet
        "data_age_s": max(known_ages) if known_ages and len(known_ages) == len(ages) else None,
        "data_old_after_s": DATA_OLD_AFTER_S,
        "complete": not missing,
        "missing_partitions": missing,
    }
