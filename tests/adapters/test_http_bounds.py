"""What an OTA answers is bounded and a large answer is read off the event loop (the pulled
channels' feeds go through the same funnel as every other call)."""

from __future__ import annotations

import threading

import pytest
from aiohttp import web

from adapters.base import ChannelSettings, FatalError
from adapters.base.http import HttpClient, Reply


@pytest.fixture
async def server():
    big = b"<x>" + b"A" * (3 * 1024 ** 2) + b"</x>"

    async def huge(request):
        return web.Response(body=big, content_type="application/xml")

    async def chunked(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"B" * 65536)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.add_routes([web.get("/huge", huge), web.get("/chunked", chunked)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/huge", "/chunked"])
async def test_an_answer_over_the_bound_is_refused_not_read_whole(server, path):
    client = HttpClient(ChannelSettings("booking", server, {}, {"max_response_bytes": 1024 ** 2}, 5), None)
    try:
        with pytest.raises(FatalError, match="more than"):
            await client.call("GET", path, operation="pull", interpret=lambda r: r.body)
    finally:
        await client.close()


async def test_a_large_answer_is_read_in_a_worker_thread(server):
    seen = []

    def interpret(reply: Reply) -> int:
        seen.append(threading.current_thread() is threading.main_thread())
        return len(reply.body)

    client = HttpClient(ChannelSettings("booking", server, {}, {}, 5), None)
    try:
        assert await client.call("GET", "/huge", operation="pull", interpret=interpret) > 3 * 1024 ** 2
    finally:
        await client.close()
    assert seen == [False]
