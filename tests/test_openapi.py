"""The OpenAPI document: valid, complete, in step with the code, and true of the live app.

schemathesis generates requests from the document for every operation and checks, with a
read, a write and an admin key, that nothing answers 5xx and that every status code, content
type and JSON body is one the document declares.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from conftest import LiveGateway
from heliograph.api import openapi
from heliograph.app import create_app
from heliograph.config import Settings
from heliograph.store.engine import make_engine
from heliograph.store.requests import LIST_COLUMNS, to_api
from query_support import dataset

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_document_is_valid_openapi() -> None:
    validate(openapi.document())  # raises on any violation of the OpenAPI 3.1 schema


def test_every_api_route_is_documented_and_nothing_else() -> None:
    app = create_app(Settings())
    served = {
        (route.path, method.lower())
        for route in app.web.routes
        if isinstance(route, Route)
        and (route.path.startswith(("/api/", "/v1/request/")) or route.path.startswith("/health"))
        for method in (route.methods or ()) - {"HEAD"}
    }
    documented = {
        (path, method) for path, item in openapi.document()["paths"].items() for method in item
    }
    assert served == documented


def test_record_schemas_list_exactly_the_store_fields() -> None:
    row: dict[str, Any] = {c.key: None for c in LIST_COLUMNS}
    row["created_at"] = 0
    fields = set(to_api(row))
    schemas = openapi.document()["components"]["schemas"]
    assert set(schemas["Record"]["properties"]) == fields
    assert set(schemas["Record"]["required"]) == fields
    assert set(schemas["AnnotatedRecord"]["properties"]) == fields | {"feedback", "scores"}


def test_served_document_and_docs_page(gateway: LiveGateway) -> None:
    resp = httpx.get(gateway.base_url + "/openapi.json")
    assert resp.status_code == 200 and resp.json() == openapi.document()
    page = httpx.get(gateway.base_url + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "POST /v1/request/query" in page.text


def test_schemathesis_against_the_live_app(gateway: LiveGateway) -> None:
    gw = gateway
    gw.app.web.state.feedback_wait_s = 0.0
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        ids = dataset(engine, gw.org.id, gw.other.id)
    finally:
        engine.dispose()
    detail = gw.record(ids["r0"])
    assert set(detail) == set(
        openapi.document()["components"]["schemas"]["RecordDetail"]["properties"]
    )
    schema = schemathesis.openapi.from_dict(openapi.document())
    keys = {"read": gw.org.read_key, "write": gw.org.write_key, "admin": gw.org.admin_key}
    started = time.monotonic()
    statuses: Counter[int] = Counter()
    real = {"request_id": ids["r0"]}
    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy()]
        if "{request_id}" in operation.path:  # also on a record that exists
            strategies.append(operation.as_strategy(path_parameters=real))
        for strategy in strategies:

            @given(case=strategy)
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                for key in keys.values():
                    headers = {"Authorization": f"Bearer {key}"}
                    response = case.call(base_url=gw.base_url, headers=headers, timeout=30)
                    statuses[response.status_code] += 1
                    case.validate_response(response, checks=CHECKS, headers=headers)

            run()
    assert statuses[200] > 100 and statuses[400] and statuses[403] and statuses[404]
    assert time.monotonic() - started < 120


@pytest.mark.parametrize("path", ["/v1/request/query", "/api/v1/requests/query/count"])
def test_declared_examples_of_errors_are_real(gateway: LiveGateway, path: str) -> None:
    headers = {"Authorization": f"Bearer {gateway.org.read_key}"}
    resp = httpx.post(gateway.base_url + path, json={"filter": {"x": 1}}, headers=headers)
    error = resp.json()["error"]
    assert resp.status_code == 400 and set(error) == {"message", "type", "code"}
