"""The contract and the routes cannot drift: every public route is documented, every
documented operation is routed, and each says the scope its view declares."""

from __future__ import annotations

from flask import Flask

from app.features.openapi.routes import openapi_path, operation_scopes

# Operator endpoints, and the document itself.
UNDOCUMENTED = ("/admin/", "/static/", "/openapi.json")


def _routed(app: Flask) -> set[tuple[str, str]]:
    return {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith(UNDOCUMENTED)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def test_every_route_is_documented_and_every_operation_routed(app: Flask) -> None:
    document = app.test_client().get("/openapi.json").json
    assert document is not None
    documented = {
        (path, method)
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert _routed(app) == documented


def test_each_operation_names_the_scope_its_view_declares(app: Flask) -> None:
    document = app.test_client().get("/openapi.json").json
    assert document is not None
    scopes = operation_scopes(app)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            expected = [{"bearer": [scopes[(path, method)]]}] if (path, method) in scopes else None
            assert operation.get("security") == expected, (path, method)
            if expected:
                assert {"401", "403", "429"} <= set(operation["responses"]), (path, method)
    assert all(path.startswith("/api/") for path, _ in scopes if not path.startswith("/admin/"))
