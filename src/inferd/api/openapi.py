"""`GET /openapi.json`: the server's routes as an OpenAPI 3.1 document.

For client generators and API explorers, and so the whole surface can be fuzzed against a real
server (tests/e2e/test_openapi_fuzz.py). The `model` path parameter lists the models this
server has, so a tool reading the document knows what it can call. Request bodies are
described as the routes check them; every refusal is a JSON `{"error": "..."}`.
"""

from __future__ import annotations

from typing import Any, get_args

from inferd import __version__
from inferd.datatypes import Datatype

JSON = "application/json"

_ERROR = {"$ref": "#/components/schemas/Error"}
_OBJECT: dict[str, Any] = {"type": "object"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What to fix."}},
    },
    "Parameters": {
        "type": "object",
        "additionalProperties": {"type": ["string", "number", "integer", "boolean"]},
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": list(get_args(Datatype))},
            "parameters": {"$ref": "#/components/schemas/Parameters"},
            "data": {"type": "array"},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"$ref": "#/components/schemas/Parameters"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "parameters": {"$ref": "#/components/schemas/Parameters"},
                    },
                },
            },
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _OBJECT,
            "outputs": {"type": "array", "items": _OBJECT},
        },
    },
    "PredictRequest": {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "minItems": 1},
            "parameters": {"$ref": "#/components/schemas/Parameters"},
        },
    },
    "PredictResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array"}},
    },
    "Feedback": {
        "type": "object",
        "description": 'One entry {"request_id", "item", "truth"}, or {"feedback": [...]}',
        "properties": {
            "request_id": {"type": "string"},
            "item": {"type": "integer", "minimum": 0},
            "truth": {},
            "feedback": {"type": "array", "items": _OBJECT},
        },
    },
    "Completion": {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string"},
            "prompt": {"type": "string", "minLength": 1},
            "max_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0},
            "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "top_k": {"type": "integer", "minimum": 0},
            "seed": {"type": "integer"},
            "stop": {"type": ["string", "array"], "items": {"type": "string"}, "maxItems": 4},
            "stream": {"type": "boolean"},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string"},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                        "content": {"type": "string"},
                    },
                },
            },
            "max_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0},
            "seed": {"type": "integer"},
            "stream": {"type": "boolean"},
        },
    },
    "Generate": {
        "type": "object",
        "required": ["text_input"],
        "properties": {
            "text_input": {"type": "string"},
            "parameters": {"$ref": "#/components/schemas/Parameters"},
        },
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _operation(
    summary: str,
    answer: dict[str, Any],
    *,
    body: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
    content_type: str = JSON,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "OK", "content": {content_type: {"schema": answer}}},
            "default": _json(_ERROR, "A refusal or failure, saying what to fix"),
        },
    }
    if body is not None:
        schema = {"$ref": f"#/components/schemas/{body}"}
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _path_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def openapi_document(models: list[str]) -> dict[str, Any]:
    """The document, with `models` (this server's) as the values of `{model}`."""
    model = _path_parameter(
        "model", {"type": "string", "enum": models} if models else {"type": "string"}
    )
    version = _path_parameter("version", {"type": "string", "pattern": "^[0-9]+$"})
    window = {
        "name": "window",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "exclusiveMinimum": 0},
        "description": "Seconds of the prediction log to report on.",
    }
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _operation("Is the process up", _OBJECT)},
        "/v2/health/ready": {"get": _operation("Are all models ready", _OBJECT)},
        "/v2": {"get": _operation("Server metadata (Open Inference Protocol)", _OBJECT)},
        "/v2/repository/index": {
            "get": _operation("Every model and its state", {"type": "array"}),
            "post": _operation("Every model and its state", {"type": "array"}),
        },
        "/v1/models": {"get": _operation("Models (OpenAI)", _OBJECT)},
        "/v1/completions": {
            "post": _operation("Complete a prompt (OpenAI)", _OBJECT, body="Completion")
        },
        "/v1/chat/completions": {
            "post": _operation("Answer a chat (OpenAI)", _OBJECT, body="ChatCompletion")
        },
        "/v1/feedback": {
            "post": _operation("Ground truth for logged predictions", _OBJECT, body="Feedback")
        },
        "/metrics": {
            "get": _operation("Prometheus metrics", {"type": "string"}, content_type="text/plain")
        },
    }
    for prefix, parameters in (
        ("/v2/models/{model}", [model]),
        ("/v2/models/{model}/versions/{version}", [model, version]),
    ):
        paths[prefix] = {"get": _operation("Model metadata", _OBJECT, parameters=parameters)}
        paths[prefix + "/ready"] = {
            "get": _operation("Is the model ready", _OBJECT, parameters=parameters)
        }
        paths[prefix + "/infer"] = {
            "post": _operation(
                "Inference (Open Inference Protocol V2)",
                {"$ref": "#/components/schemas/InferResponse"},
                body="InferRequest",
                parameters=parameters,
            )
        }
    for prefix, parameters in (
        ("/v1/models/{model}", [model]),
        ("/v1/models/{model}/versions/{version}", [model, version]),
    ):
        paths[prefix] = {
            "get": _operation("Is the model ready (V1)", _OBJECT, parameters=parameters)
        }
        paths[prefix + ":predict"] = {
            "post": _operation(
                "Prediction (KServe V1)",
                {"$ref": "#/components/schemas/PredictResponse"},
                body="PredictRequest",
                parameters=parameters,
            )
        }
    paths["/v1/models/{model}/report"] = {
        "get": _operation(
            "The four costs of the model's predictions", _OBJECT, parameters=[model, window]
        )
    }
    paths["/v2/models/{model}/generate"] = {
        "post": _operation("Generate text (V2)", _OBJECT, body="Generate", parameters=[model])
    }
    paths["/v2/models/{model}/generate_stream"] = {
        "post": _operation(
            "Generate text as server-sent events (V2)",
            {"type": "string"},
            body="Generate",
            parameters=[model],
            content_type="text/event-stream",
        )
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "inferd",
            "version": __version__,
            "description": "Predictions, decisions and their costs: the Open Inference "
            "Protocol (V2), KServe V1, and OpenAI-compatible text generation.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "paths": paths,
    }
