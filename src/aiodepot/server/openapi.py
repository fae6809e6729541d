"""The OpenAPI 3.1 description of the borgstore REST protocol (v1), as aiodepot's server speaks it."""

from __future__ import annotations

from typing import Any

__all__ = ["document"]

_ACCEPT = {
    "name": "Accept",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "enum": ["application/vnd.x.borgstore.rest.v1"]},
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[!-@\\[\\]-~]+$"}}
_ERRORS = {
    str(code): {"description": text, "content": {"text/plain": {"schema": {"type": "string"}}}}
    for code, text in (
        (400, "bad request (name, JSON, range)"),
        (401, "authentication required"),
        (403, "permission denied"),
        (404, "no such item"),
        (406, "missing or wrong Accept header"),
        (408, "the body stalled"),
        (409, "the store exists and is not empty"),
        (410, "the store does not exist"),
        (412, "state error"),
        (413, "body too large"),
        (416, "short read"),
        (422, "content hash mismatch"),
        (507, "quota exceeded"),
    )
}
_OK = {"description": "done", "content": {"text/plain": {"schema": {"type": "string"}}}}
_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_SOURCES = {
    "application/json": {
        "schema": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "integer", "minimum": 0}],
                "minItems": 3,
                "maxItems": 3,
            },
        }
    }
}


def _cmd(*values: str) -> dict[str, Any]:
    return {"name": "cmd", "in": "query", "required": True, "schema": {"type": "string", "enum": list(values)}}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each call)."""
    item = "/{name}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "borgstore REST protocol",
            "version": "1",
            "description": "A key/value store over HTTP, as served by aiodepot and borgstore. Every request "
            "needs the Accept header; the item name is the URL path, not percent-decoded.",
        },
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "security": [{"basic": []}, {}],
        "paths": {
            "/": {
                "get": {
                    "summary": "list the root directory",
                    "parameters": [_ACCEPT],
                    "responses": {"200": {"description": "JSON listing"}, **_ERRORS},
                },
                "head": {
                    "summary": "info on the store root",
                    "parameters": [_ACCEPT],
                    "responses": {"200": _OK, **_ERRORS},
                },
                "post": {
                    "summary": "create, quota, move, gather, defrag",
                    "parameters": [
                        _ACCEPT,
                        _cmd("create", "quota", "move", "gather", "defrag"),
                        {"name": "current", "in": "query", "schema": {"type": "string"}},
                        {"name": "new", "in": "query", "schema": {"type": "string"}},
                        {"name": "target", "in": "query", "schema": {"type": "string"}},
                        {"name": "algorithm", "in": "query", "schema": {"type": "string"}},
                        {"name": "namespace", "in": "query", "schema": {"type": "string"}},
                        {"name": "levels", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    ],
                    "requestBody": {"required": False, "content": _SOURCES},
                    "responses": {"200": _OK, **_ERRORS},
                },
                "delete": {
                    "summary": "destroy the store",
                    "parameters": [_ACCEPT, _cmd("destroy")],
                    "responses": {"200": _OK, **_ERRORS},
                },
            },
            item: {
                "get": {
                    "summary": "load an item (Range: bytes=a-b, bytes=a-, bytes=-n)",
                    "parameters": [_ACCEPT, _NAME, {"name": "Range", "in": "header", "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "the value", "content": _BYTES},
                        "206": {"description": "a range", "content": _BYTES},
                        **_ERRORS,
                    },
                },
                "head": {"summary": "item info", "parameters": [_ACCEPT, _NAME], "responses": {"200": _OK, **_ERRORS}},
                "post": {
                    "summary": "store a value (or cmd=mkdir, cmd=hash)",
                    "parameters": [
                        _ACCEPT,
                        _NAME,
                        {"name": "cmd", "in": "query", "schema": {"type": "string", "enum": ["mkdir", "hash"]}},
                        {"name": "algorithm", "in": "query", "schema": {"type": "string"}},
                        {"name": "X-Content-hash-sha256", "in": "header", "schema": {"type": "string"}},
                    ],
                    "requestBody": {"required": False, "content": _BYTES},
                    "responses": {"200": _OK, **_ERRORS},
                },
                "delete": {
                    "summary": "delete an item (or cmd=rmdir)",
                    "parameters": [
                        _ACCEPT,
                        _NAME,
                        {"name": "cmd", "in": "query", "schema": {"type": "string", "enum": ["rmdir"]}},
                    ],
                    "responses": {"200": _OK, **_ERRORS},
                },
            },
            item + "/": {
                "get": {
                    "summary": "list a directory",
                    "parameters": [_ACCEPT, _NAME],
                    "responses": {"200": {"description": "JSON listing"}, **_ERRORS},
                },
            },
        },
    }
