"""Postgres read models built from the log, their migrations, and the query API."""
