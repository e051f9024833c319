#!/bin/sh
# Temporal's schema with Temporal's own tool (temporal-sql-tool, in the admin-tools
# image): create both databases if missing, then migrate each to the newest version
# this server release ships. Re-running it is a no-op; after a server upgrade it
# applies the new schema versions (do it before starting the new server).
set -eu
SCHEMA=/etc/temporal/schema/postgresql/v12
for db in temporal temporal_visibility; do
  dir=temporal; [ "$db" = temporal_visibility ] && dir=visibility
  temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" \
    -u "$SQL_USER" --pw "$SQL_PASSWORD" --db "$db" create-database || true
  temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" \
    -u "$SQL_USER" --pw "$SQL_PASSWORD" --db "$db" setup-schema -v 0.0 || true
  temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" \
    -u "$SQL_USER" --pw "$SQL_PASSWORD" --db "$db" update-schema -d "$SCHEMA/$dir/versioned"
done
