"""The HTTP transport alone: inferd's HTTP/1.1 server and its connections, the ASGI bridge,
request and response messages, and routing. Nothing here knows about models or protocols.

    server.py      the listening socket's life: start-up, signals, graceful stop
    connection.py  one client connection: parsing, keep-alive, pipelining, limits, timers
    writing.py     writing its answers: the response head, streaming, write back-pressure
    asgi.py        the same handler as an ASGI app (any ASGI server; the in-process tests)
    messages.py    HttpRequest / HttpResponse / StreamingResponse, body decoding
    routing.py     "/v2/models/{model}/infer"-style routes → handlers
"""
