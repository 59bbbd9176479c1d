"""stationwatch: live telemetry backend for networks of public service stations."""

__version__ = "0.1.0"
