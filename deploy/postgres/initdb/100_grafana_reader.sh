#!/bin/sh
# Runs once, when the TimescaleDB container initialises an empty data volume: a login role
# that can read every table and view (pg_read_all_data, PostgreSQL 14+) and write nothing.
# Grafana's datasource logs in as it, so a dashboard query can never change data.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD is not set}" \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'pw';
GRANT pg_read_all_data TO grafana_reader;
SQL
