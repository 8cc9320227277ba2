"""The API answers what its OpenAPI document says, for requests generated from that document.

Schemathesis generates valid and invalid requests for every operation of ``/openapi.json``
and checks each answer: never a 5xx, only documented status codes, the documented content
type, headers and body schema, the ``Allow`` header of a 405, and authentication enforced.
Two of its checks do not apply here:

- ``positive_data_acceptance``: the document cannot express every rule of a valid request
  (a time zone that exists, a window whose end follows its start, arms with unique ids);
  those requests get a 422 that names the field.
- ``negative_data_rejection``: pydantic's lax mode takes ``"true"`` or ``1`` for a boolean and
  ``"1.5"`` for a number, as FastAPI applications do by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from tests.serving.served import served_app

EXPERIMENT = {"id": "e1", "type": "bandit", "arms": [{"id": "v0", "control": True}, {"id": "v1"}]}
NOT_APPLICABLE = [negative_data_rejection, positive_data_acceptance]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The app (its lifespan running) with one experiment, and a key with every scope."""
    with served_app(tmp_path_factory.mktemp("contract"), EXPERIMENT) as client:
        key = client.headers["Authorization"].removeprefix("Bearer ")
        yield client.app, key


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    served: tuple[Any, str], mode: GenerationMode
) -> None:
    app, key = served
    operations = _operations(app)
    assert len(operations) >= 12  # every endpoint of DESIGN.md is in the document
    for operation in operations:

        @settings(
            max_examples=25,
            derandomize=True,  # the same requests on every run: CI fails only on a change
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"}, excluded_checks=NOT_APPLICABLE
            )

        try:
            answers_as_documented()
        except Unsatisfiable:
            # No input to make invalid (``/healthz``, ``/readyz``): nothing negative to send.
            assert mode is GenerationMode.NEGATIVE
