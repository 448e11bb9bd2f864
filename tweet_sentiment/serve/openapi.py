"""The OpenAPI document as the server answers: what BentoML generates, with what it leaves out put in.

Served by the pages app at /docs.json (mounted routes come before BentoML's own), so clients, Swagger and
schemathesis read a document they can trust.
"""

ERROR_RESPONSES = {
    400: "invalid input: `detail` lists what failed validation",
    401: "POST /feedback without the right `Authorization: Bearer <token>` (only when TWEETS_FEEDBACK_TOKEN is set)",
    408: "the body did not arrive within TWEETS_BODY_TIMEOUT_SECONDS",
    413: "a body over TWEETS_MAX_BODY_BYTES, refused before it is read",
    415: "a body declared as anything but application/json",
    500: "an error of the server's own",
    503: "overloaded, or a dependency down; retry after the Retry-After header",
}
PREDICT_ROUTES = ("/predict", "/predict_batch", "/explain")  # the routes whose `model` names one to answer
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "array", "items": {"type": "object"}, "description": "validation errors (400 only)"},
    },
    "required": ["error"],
}


def as_answered(document: dict, models: list[str]) -> dict:
    """BentoML's OpenAPI document (``Service.openapi_spec.asdict()``), rewritten in place to say what the
    server does:

    - a request's ``model``: one of ``models``, those the server was started with;
    - every error, from BentoML or the guards, in the one shape ``{"error": ..., "detail"?: [...]}``;
    - a request body required where it has required fields; a field that may be null is ``nullable``
      (BentoML drops the null of ``X | None``, or leaves 3.1's ``{"type": "null"}`` in a 3.0 document).
    """
    for path, item in document["paths"].items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, description in ERROR_RESPONSES.items():
                content = {"application/json": {"schema": ERROR_SCHEMA}}
                operation["responses"][str(status)] = {"description": description, "content": content}
            if body := operation.get("requestBody"):
                schema = body["content"]["application/json"]["schema"]
                body["required"] = bool(schema.get("required"))  # /status takes none: no body is fine
                if path in PREDICT_ROUTES:  # the model a request names (a report's `model` is free text)
                    schema["properties"]["model"]["enum"] = [*models, None]  # 3.0: a nullable enum lists null
    mark_nullable(document)
    return document


def mark_nullable(schema) -> None:
    """OpenAPI 3.0's ``nullable: true`` on every property that may be null (its default is null, or it is
    pydantic's ``anyOf: [X, {"type": "null"}]``, which 3.0 does not know), at any depth."""
    if isinstance(schema, dict):
        for value in schema.get("properties", {}).values():
            if not isinstance(value, dict):
                continue
            choices = value.get("anyOf", [])
            if {"type": "null"} in choices:
                choices.remove({"type": "null"})
                if len(choices) == 1:
                    value.update(value.pop("anyOf")[0])
                value["nullable"] = True
            if "default" in value and value["default"] is None:
                value["nullable"] = True
        for value in schema.values():
            mark_nullable(value)
    elif isinstance(schema, list):
        for value in schema:
            mark_nullable(value)
