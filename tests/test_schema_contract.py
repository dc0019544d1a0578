"""`schema.graphql` is the published contract: it must be exactly what the code serves."""

from __future__ import annotations

import subprocess
import sys

from gateway.config import load_settings
from gateway.schema import build_schema
from tests.conftest import PROJECT

schema = build_schema(load_settings())


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


def test_every_type_field_and_argument_has_a_description_for_graphiql() -> None:
    graphql_schema = schema._schema
    missing = []
    for name, graphql_type in graphql_schema.type_map.items():
        if name.startswith("__") or name in {"String", "Boolean", "Int", "Float", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for argument_name, argument in getattr(field, "args", {}).items():
                if not argument.description:
                    missing.append(f"{name}.{field_name}({argument_name})")
    assert missing == []


def test_every_resource_kind_is_in_the_schema_as_a_node() -> None:
    from gateway.resources import KINDS

    sdl = schema.as_str()
    for type_name in KINDS:
        if type_name == "AuditEvent":
            assert "type AuditEvent {" in sdl
            continue
        assert f"type {type_name} implements Node" in sdl, type_name
