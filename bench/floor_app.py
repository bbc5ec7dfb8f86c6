"""The HTTP floor: a bare ASGI app on the same uvicorn stack `inferd serve` uses.

It reads the whole request body and answers a fixed V2-shaped JSON body (the size of a
real `digits` reply), so what it measures is the cost of HTTP on this machine: uvicorn with
httptools and uvloop (uvicorn's "auto" picks them when installed, as for inferd), access log
off. No framework, no routing, no model.

    python bench/floor_app.py --port 8001              # bare ASGI: the floor
    python bench/floor_app.py --port 8001 --starlette  # the same through Starlette
"""

from __future__ import annotations

import argparse
from typing import Any

# A real digits reply, so the floor sends as many response bytes as inferd does.
ANSWER = (
    b'{"model_name":"digits","model_version":"1","id":"floor-1","outputs":['
    b'{"name":"label","datatype":"BYTES","shape":[1,1],"data":["7"]},'
    b'{"name":"score","datatype":"FP32","shape":[1,1],"data":[0.96912754]},'
    b'{"name":"probabilities","datatype":"FP32","shape":[1,10],"data":[0.0057501122,'
    b"0.004378214,0.0038857546,0.0020646874,0.002697654,0.0019485772,0.0034367228,"
    b"0.96912754,0.0032235656,0.0034871812]}]}"
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ANSWER)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    b"".join(chunks)  # the body is read in full, as any real handler would
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def starlette_app() -> Any:
    """The same answer through Starlette (one Route, the middleware stack inferd gets): the
    framework's own cost, between the bare floor and inferd."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    return Starlette(routes=[Route("/", endpoint, methods=["GET", "POST"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--starlette", action="store_true", help="serve through Starlette")
    args = parser.parse_args()
    application = starlette_app() if args.starlette else app
    # The same call `inferd serve` makes (src/inferd/cli.py): loop/http "auto", no access log.
    uvicorn.run(
        application, host="127.0.0.1", port=args.port, log_level=args.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
