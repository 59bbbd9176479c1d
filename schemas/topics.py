"""Topic names of the contract."""

HEARTBEAT = "station.heartbeat"
OCCUPANCY = "station.occupancy"
STATUS = "station.status"
REGISTRY = "station.registry"
ALERTS = "station.alerts"
DEADLETTER = "station.deadletter"

INPUT_TOPICS = (HEARTBEAT, OCCUPANCY, STATUS, REGISTRY)
OUTPUT_TOPICS = (ALERTS, DEADLETTER)
