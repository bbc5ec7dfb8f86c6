"""The HTTP floor: a bare ASGI app on uvicorn (uvloop + httptools), no framework, no model.

`inferd serve` has its own HTTP/1.1 server (src/inferd/http/server.py); this is the bare-ASGI
floor it is measured against: uvicorn with httptools and uvloop (uvicorn's "auto" picks them
when installed), access log off, one callable that reads the request body and answers a fixed
JSON body. What it measures is the cost of HTTP through an ASGI server on this machine.

    python bench/floor_app.py --port 8001              # bare ASGI: the floor (bench/serve.py)
    python bench/floor_app.py --port 8001 --starlette  # the same through Starlette
    python bench/floor_app.py --port 8001 --replies replies.json   # the peers' floor

- Default: reads the whole body and answers a fixed V2-shaped body the size of a real
  `digits` reply, on any path (bench/serve.py's floor).
- `--replies FILE` (bench/peers/run.py's `floor` peer): FILE is a JSON object mapping a
  route (`/v2/models/{name}/infer`) to the JSON reply to give there. The body is read in full
  and parsed with orjson.loads, as any JSON API must, and the route's fixed reply is sent
  (404 for any other path). It never looks at the parsed values: the reply is the V2
  response carrying raw ONNX Runtime's output for the model's sample 0, so the peers'
  readiness check (sample 0 answered correctly) passes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
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
NOT_FOUND = b'{"error":"no such route"}'
BAD_JSON = b'{"error":"the body is not JSON"}'


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Any) -> bytes | None:
    """The whole request body; None when the client went away."""
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if await read_body(receive) is None:  # the body is read in full, as any real handler would
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def replies_app(replies: dict[str, Any]) -> Callable[..., Any]:
    """The bare app that parses the JSON body (orjson) and answers each route's fixed reply."""
    import orjson

    answers = {}
    for route, reply in replies.items():
        body = orjson.dumps(reply)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        answers[route] = (headers, body)
    missing = (
        [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(NOT_FOUND))],
        NOT_FOUND,
    )
    bad_json = (
        [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BAD_JSON))],
        BAD_JSON,
    )

    async def parsing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        found = answers.get(scope["path"])
        headers, answer = found or missing
        status = 200 if found else 404
        try:
            orjson.loads(body)  # parsed, as any JSON API must; the values are never looked at
        except orjson.JSONDecodeError:
            headers, answer, status = bad_json[0], bad_json[1], 400
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return parsing_app


def starlette_app() -> Any:
    """The same answer through Starlette (one Route, a framework's middleware stack): the
    framework's own cost, above the bare floor."""
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

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--starlette", action="store_true", help="serve through Starlette")
    mode.add_argument(
        "--replies",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON object: route -> fixed reply; parse each body with orjson, answer per route",
    )
    args = parser.parse_args()
    if args.replies is not None:
        application = replies_app(json.loads(args.replies.read_text()))
    else:
        application = starlette_app() if args.starlette else app
    # loop/http "auto": uvloop and httptools when installed (inferd's dependencies); no access
    # log, one process.
    uvicorn.run(
        application, host="127.0.0.1", port=args.port, log_level=args.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
