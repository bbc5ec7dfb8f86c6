"""The OpenAPI document: a valid 3.1 document that every route of the API is in."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from inferd.api.openapi import openapi_document
from inferd.api.routes import Api
from inferd.errors import MethodNotAllowedError


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "7" if m.group(1) == "version" else "m", path)


def test_the_document_is_valid_openapi_3_1_with_every_operation() -> None:
    document = openapi_document(["m", "n"])
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 23
    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    assert infer["parameters"][0]["schema"]["enum"] == ["m", "n"]


def test_every_documented_operation_is_routed_and_every_route_documented() -> None:
    api: Any = Api.__new__(Api)  # only the routes table is needed
    router = Api._routes(api, *(_Stub() for _ in range(4)))  # type: ignore[arg-type]
    documented = openapi_document(["m"])["paths"]
    for path, operations in documented.items():
        for method in operations:
            router.match(method.upper(), _concrete(path))  # raises when not routed
    assert "/openapi.json" not in documented  # the document itself is not an operation
    routed = {regex.pattern for regex, _, _ in router._routes} | set(router._static)
    assert len(routed) == len(documented) + 1


class _Stub:
    def __getattr__(self, name: str) -> Any:
        return _handler


async def _handler(request: Any) -> Any:
    raise MethodNotAllowedError("unused", [])
