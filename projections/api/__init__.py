"""HTTP routers of the query API, one module per area; ``ops.api.build_app`` mounts them."""
