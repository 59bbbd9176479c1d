"""PostgreSQL / TimescaleDB: schema migrations (`stationwatch.db.migrate`) and the writers.

Nothing is re-exported here, so `stationwatch.db.migrate` stays the module, not the function.
"""
