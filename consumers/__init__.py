"""Processes that consume `station.alerts` and deliver them (routing, grouping, channels)."""
