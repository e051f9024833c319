#!/bin/sh
# duratask's own database and role, apart from Temporal's (first start of the volume only).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE duratask LOGIN PASSWORD '${STORE_DB_PASSWORD}';
CREATE DATABASE duratask OWNER duratask;
SQL
