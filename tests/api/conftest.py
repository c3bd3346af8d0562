from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trio
import trio_asyncio

from api.service import serve_api
from shared.settings import Settings
from tests.api.api_process import ApiProcess, running_api
from tests.conftest import TEST_API_TOKEN, TEST_INTERNAL_TOKEN, Deps


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    """The api served in-process on a free port, against this test's two shards."""
    shutdown = trio.Event()
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        urls = await nursery.start(serve_api, settings.replace(api_port=0), loop, shutdown)
        yield urls[0]
        shutdown.set()


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Authenticated for the public endpoints."""
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {TEST_API_TOKEN}"},
                                 timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def api_process(deps: Deps, template_database: str) -> Iterator[ApiProcess]:
    """``python -m api`` (HTTP and gRPC) on two fresh, seeded shards, for a module of fuzz tests."""
    with running_api(deps, template_database) as api:
        yield api


INTERNAL = {"Authorization": f"Bearer {TEST_INTERNAL_TOKEN}"}
