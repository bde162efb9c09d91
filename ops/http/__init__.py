"""The HTTP entry point: the app, its middleware, error mapping and routes, one module each.

- :mod:`ops.http.app` assembles the FastAPI app (``kernel api`` serves it);
- :mod:`ops.http.front_door` is the outermost middleware and the hot routes it serves;
- :mod:`ops.http.openapi` documents the hot routes, which FastAPI does not see;
- :mod:`ops.http.errors` maps errors to status codes and JSON bodies;
- :mod:`ops.http.params` checks query and path parameters;
- one module per router: :mod:`ops.http.operations` (health, readiness,
  metrics), :mod:`ops.http.sentinel_check`, :mod:`ops.http.sentinel_explain`,
  :mod:`ops.http.audit`.

Routers stay thin: the SQL and the read models are :mod:`projections`' (the
queries, and :mod:`projections.store` to run one on a worker thread), the
decisions :mod:`streams.sentinel`'s. The dependency points one way:
``ops.http`` imports ``projections`` and ``streams``, never the reverse.
"""
