#!/bin/sh
# compose.yaml's Postgres: the login of each Kernel role (run once, by the image's
# entrypoint, on an empty data directory). Who may do what is the migrations'
# business (0300 grants each role exactly its statements); this gives each role a
# login and a password from the environment, and the kernel database to its owner.
# No Kernel service logs in as the superuser. Passwords go in as psql variables,
# quoted by psql (:'var'), never spliced into the statement text.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner="$KERNEL_PG_OWNER_PASSWORD" \
  -v api="$KERNEL_PG_API_PASSWORD" \
  -v projector="$KERNEL_PG_PROJECTOR_PASSWORD" \
  -v sentinel="$KERNEL_PG_SENTINEL_PROJECTOR_PASSWORD" \
  -v auditor="$KERNEL_PG_AUDITOR_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE kernel_owner LOGIN NOSUPERUSER CREATEDB NOCREATEROLE PASSWORD :'owner';
CREATE ROLE kernel_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'api';
CREATE ROLE kernel_projector LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'projector';
CREATE ROLE kernel_sentinel_projector LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'sentinel';
CREATE ROLE kernel_auditor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'auditor';
ALTER DATABASE kernel OWNER TO kernel_owner;
ALTER SCHEMA public OWNER TO kernel_owner;
SQL
