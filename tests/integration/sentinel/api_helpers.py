"""Drive a FastAPI app in-process with httpx, its lifespan included.

starlette's TestClient warns about httpx (warnings are errors here), and
httpx's ASGITransport does not run the lifespan, so the app's lifespan
context is entered by hand around an AsyncClient.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from tests import identity


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://kernel", headers=identity.AUTH
        ) as client:
            yield client
