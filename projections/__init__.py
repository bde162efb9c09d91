"""Postgres read models built from the log, their migrations, and the queries the API runs.

The HTTP routes that call them are :mod:`ops.http`'s; nothing here imports ``ops``.
"""
