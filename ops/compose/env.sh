#!/bin/sh
# Writes ./.env for `docker compose up`: one generated password per Postgres role
# (mode 0600; never committed: .gitignore). Keeps an existing .env.
set -eu
[ -e .env ] && { echo "kept .env"; exit 0; }
umask 077
pw() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
{
  echo "POSTGRES_PASSWORD=$(pw)"
  for role in OWNER API PROJECTOR SENTINEL_PROJECTOR AUDITOR; do
    echo "KERNEL_PG_${role}_PASSWORD=$(pw)"
  done
} > .env
echo "wrote .env (0600): the Postgres passwords of compose.yaml"
