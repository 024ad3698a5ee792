"""schemathesis against the app: every operation, stateful links included, fixed seed."""

from __future__ import annotations

import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app.features.openapi.document import build_document
from app.foundation.migrations import PROJECT_ROOT
from app.web.sessions import Database
from devtools.processes import TOKEN_VARIABLE
from tests.conftest import empty_database
from tests.support.tokens import bearer

# Derandomized: the same inputs every run, so a failure reproduces. `make test` tries 15
# cases per operation and mode (it runs before every commit); CI runs the fast tier once
# more with FUZZ_MAX_EXAMPLES=60, which reaches every status code of every operation.
FUZZ = hypothesis.settings(
    max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", "15")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
PROBES = {"/readyz", "/startupz"}


def errors_are_problems(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool:
    """Every 4xx and 5xx is application/problem+json with its own status in the body
    (the probes' 503 is a probe state with its own documented body)."""
    if response.status_code < 400 or case.operation.path in PROBES:
        return True
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == "application/problem+json", content_type
    body = response.json()
    assert body["status"] == response.status_code
    assert "Traceback" not in response.text
    return True


# A valid request may still be refused for the state it meets, not its form: schemathesis
# allows 409 for that, and the repository's schemathesis.toml adds 412 (a stale If-Match),
# for `st run` and for this suite alike.
CONFIG = SchemathesisConfig.from_path(PROJECT_ROOT / "schemathesis.toml")
CHECKS: dict[str, Any] = {"additional_checks": [errors_are_problems, positive_data_acceptance]}


class SessionToken:
    """Every scope: the contract is fuzzed as a fully entitled client sees it. Registered
    as schemathesis's auth, so its own checks know which credentials are the valid ones."""

    def get(self, _case: schemathesis.Case[Any], _ctx: Any) -> str:
        return os.environ[TOKEN_VARIABLE]

    def set(self, case: schemathesis.Case[Any], token: str, _ctx: Any) -> None:
        case.headers.update(bearer(token))


@pytest.fixture
def api(app: Flask, db: Database) -> OpenApiSchema:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG)
    schema.auth()(SessionToken)
    return schema


def _cases() -> list[tuple[str, GenerationMode]]:
    """Every operation with valid data; with invalid data, those that have inputs to break
    (a probe's only input is the free-form X-Request-ID)."""
    cases = []
    for path in build_document("test", {})["paths"].values():
        for method, operation in path.items():
            if method == "parameters":
                continue
            cases.append((operation["operationId"], GenerationMode.POSITIVE))
            if (
                "parameters" in path
                or "requestBody" in operation
                or len(operation["parameters"]) > 1
            ):
                cases.append((operation["operationId"], GenerationMode.NEGATIVE))
    return cases


@pytest.mark.parametrize(("operation_id", "mode"), _cases())
def test_every_operation_honours_its_contract(
    api: OpenApiSchema, operation_id: str, mode: GenerationMode
) -> None:
    operation = api.find_operation_by_id(operation_id)

    @FUZZ
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(**CHECKS)

    call()


def test_stateful_links_create_read_change_delete(api: OpenApiSchema, db: Database) -> None:
    seen: set[tuple[str, int]] = set()

    class Workflow(api.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from an empty database, so a scenario replays the same.
            empty_database(db)

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case[Any]) -> None:
            seen.add((case.operation.label, response.status_code))

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case[Any], **kwargs: Any
        ) -> None:
            case.validate_response(response, **CHECKS)

    Workflow.run(
        settings=hypothesis.settings(
            FUZZ, max_examples=25, stateful_step_count=8, phases=[hypothesis.Phase.generate]
        )
    )
    # The links led somewhere: a created user was read, changed under its ETag and deleted.
    assert {
        ("POST /api/v1/users", 201),
        ("GET /api/v1/users/{user_id}", 200),
        ("PATCH /api/v1/users/{user_id}", 200),
        ("DELETE /api/v1/users/{user_id}", 204),
        ("POST /api/v1/exports", 202),
        ("GET /api/v1/exports/{export_id}", 200),
    } <= seen, sorted(seen)
