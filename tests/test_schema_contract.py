"""`schema.graphql` is the published contract: it must be exactly what the code serves."""

from __future__ import annotations

import subprocess
import sys

from gateway.schema import schema
from tests.conftest import PROJECT


def test_the_committed_schema_matches_the_code() -> None:
    committed = (PROJECT / "schema.graphql").read_text()
    assert committed.strip() == schema.as_str().strip(), (
        "schema.graphql is out of date: run `make schema` and commit it (name breaking changes in CHANGELOG.md)"
    )


def test_akson_schema_prints_the_served_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "schema"], capture_output=True, text=True, check=True, cwd=PROJECT
    ).stdout
    assert printed.strip() == schema.as_str().strip()


def test_every_type_and_query_field_has_a_description() -> None:
    graphql_schema = schema._schema
    for name, graphql_type in graphql_schema.type_map.items():
        if name.startswith("__") or name in {"String", "Boolean", "Int", "Float", "ID"}:
            continue
        assert graphql_type.description, f"type {name} has no description"
    query = graphql_schema.query_type
    assert query is not None
    for field_name, field in query.fields.items():
        assert field.description, f"Query.{field_name} has no description"
        for argument_name, argument in field.args.items():
            assert argument.description, f"Query.{field_name}({argument_name}) has no description"
