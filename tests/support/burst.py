"""A request burst that really arrives at once: connect first, then write every request.

An HTTP client library opens connections and sends requests one after another, so a fast
server can answer each before the next arrives and nothing is left to batch. Here every
connection is open before any request is written, and all requests are written in one go.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    body = await reader.readexactly(int(headers["content-length"]))
    return status, json.loads(body)


async def burst(host: str, port: int, path: str, bodies: list[bytes]) -> list[tuple[int, Any]]:
    """POST each body on its own connection, all at once; (status, JSON) per body, in order."""
    connections = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in bodies))
    for (_, writer), body in zip(connections, bodies, strict=True):
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(_read_response(reader) for reader, _ in connections)), 60
        )
    finally:
        for _, writer in connections:
            writer.close()


def alone_and_in_a_burst(host_port: str, path: str, instances: list[Any]) -> list[tuple[Any, Any]]:
    """Each V1 instance's prediction when sent alone (one request after another, nothing to
    batch with) and when sent in a burst the server batches: (alone, batched) per instance.

    Every burst reply must be a 200; a batched answer that differs from its lone answer is
    what the caller checks.
    """
    import httpx  # the test clients' library; this module otherwise needs only asyncio

    with httpx.Client(base_url=f"http://{host_port}", timeout=60) as http:
        alone = []
        for instance in instances:
            reply = http.post(path, json={"instances": [instance]})
            assert reply.status_code == 200, reply.text
            alone.append(reply.json()["predictions"][0])
    host, port = host_port.split(":")
    bodies = [json.dumps({"instances": [instance]}).encode() for instance in instances]
    replies = asyncio.run(burst(host, int(port), path, bodies))
    assert all(status == 200 for status, _ in replies), replies
    return [(one, reply["predictions"][0]) for one, (_, reply) in zip(alone, replies, strict=True)]
