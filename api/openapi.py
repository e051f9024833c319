"""Schemas the OpenAPI document needs that FastAPI cannot infer.

Definition bodies are read raw (JSON, or YAML by content type), so FastAPI does not see
their model; the routes declare `TaskDefinition` as their JSON body (`DEFINITION_BODY`)
and `install` adds its schema to the document's components. Clients and the contract
test then generate and check real definitions.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from workflows.definition import TaskDefinition

REF = "#/components/schemas/{model}"
DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": REF.format(model="TaskDefinition")}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        schema = TaskDefinition.model_json_schema(ref_template=REF)
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, sub in schema.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components.setdefault("TaskDefinition", schema)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
