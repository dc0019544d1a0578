"""The query-plan translator (a pure function): values become parameters, unknown shapes deny."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.authz import SqlFilter, combine_scoped, condition_key
from gateway.plan_sql import Attribute, Column, Holders, SetOf, Translator, UntranslatablePlan
from gateway.resources import KINDS
from gateway.sql import sql, value
from tests.conftest import PROJECT

U1 = "0a9e7a31-0000-4000-8000-000000000011"
U2 = "0a9e7a31-0000-4000-8000-000000000012"
ATTRS: dict[str, Attribute] = {
    "unit": Column(sql("t.unit_id"), "uuid"),
    "category": Column(sql("t.category"), "text"),
    "age": Column(sql("t.age"), "integer"),
    "units": SetOf(sql("SELECT x.unit_id FROM x WHERE x.t_id = t.id"), "uuid"),
    "blocked": Column(sql("EXISTS (SELECT 1 FROM b WHERE b.t_id = t.id)"), "boolean"),
}


def var(name: str) -> dict[str, Any]:
    return {"variable": f"request.resource.attr.{name}"}


def val(value: Any) -> dict[str, Any]:
    return {"value": value}


def expr(op: str, *operands: dict[str, Any]) -> dict[str, Any]:
    return {"expression": {"operator": op, "operands": list(operands)}}


def translate(condition: dict[str, Any]) -> tuple[str, list[Any]]:
    return Translator(ATTRS).where(condition).render()


def test_a_cerbos_care_relation_plan_becomes_two_exists_clauses_with_parameters() -> None:
    plan = expr("or", expr("hasIntersection", var("units"), val([U1, U2])), expr("in", val(U1), var("units")))
    sql, values = translate(plan)
    assert sql == (
        "(EXISTS (SELECT 1 FROM (SELECT x.unit_id FROM x WHERE x.t_id = t.id) AS s(v) WHERE s.v = ANY($1::uuid[]))"
        " OR EXISTS (SELECT 1 FROM (SELECT x.unit_id FROM x WHERE x.t_id = t.id) AS s(v) WHERE s.v = $2::uuid))"
    )
    assert values == [[U1, U2], U1]


def test_a_list_attribute_with_holders_becomes_one_uncorrelated_in_subquery() -> None:
    held = Holders(sql("t.patient_id"), sql("x"), sql("x.patient_id"), sql("x.unit_id"), sql("x.active"))
    per_row = sql("SELECT x.unit_id FROM x WHERE x.t_id = t.id")
    attributes: dict[str, Attribute] = {"units": SetOf(per_row, "uuid", held)}
    plan = expr("or", expr("hasIntersection", var("units"), val([U1, U2])), expr("in", val(U1), var("units")))
    text, values = Translator(attributes).where(plan).render()
    assert text == (
        "((t.patient_id IS NOT NULL AND t.patient_id IN (SELECT x.patient_id FROM x WHERE x.unit_id = ANY($1::uuid[]) "
        "AND x.active)) OR (t.patient_id IS NOT NULL AND t.patient_id IN (SELECT x.patient_id FROM x "
        "WHERE x.unit_id = $2::uuid AND x.active)))"
    )
    assert values == [[U1, U2], U1]


def test_values_never_enter_the_sql_text() -> None:
    hostile = "x'); DROP TABLE patient; --"
    sql, values = translate(
        expr("and", expr("eq", var("category"), val(hostile)), expr("ne", var("category"), val("a")))
    )
    assert hostile not in sql and "DROP" not in sql
    assert sql == "((t.category = $1::text) AND (t.category <> $2::text))"
    assert values == [hostile, "a"]


@pytest.mark.parametrize(
    ("op", "expected"), [("lt", ">"), ("gt", "<"), ("le", ">="), ("ge", "<="), ("eq", "="), ("ne", "<>")]
)
def test_a_comparison_with_the_value_first_is_flipped(op: str, expected: str) -> None:
    sql, values = translate(expr(op, val(12), var("age")))
    assert sql == f"(t.age {expected} $1::integer)"
    assert values == [12]


def test_whole_numbers_from_protobuf_doubles_become_integers() -> None:
    assert translate(expr("ge", var("age"), val(16.0)))[1] == [16]


def test_a_column_in_a_list_becomes_any() -> None:
    assert translate(expr("in", var("unit"), val([U1, "not-a-uuid"]))) == ("(t.unit_id = ANY($1::uuid[]))", [[U1]])


def test_values_that_cannot_match_a_uuid_column_make_the_condition_false_not_an_error() -> None:
    assert translate(expr("eq", var("unit"), val("")))[0] == "FALSE"
    assert translate(expr("ne", var("unit"), val("")))[0] == "TRUE"
    assert translate(expr("in", val("nobody"), var("units")))[0] == "FALSE"
    assert translate(expr("hasIntersection", var("units"), val([])))[0] == "FALSE"


def test_a_boolean_attribute_is_a_condition_of_its_own() -> None:
    assert translate(expr("not", var("blocked"))) == ("(NOT (EXISTS (SELECT 1 FROM b WHERE b.t_id = t.id)))", [])
    assert translate(expr("eq", var("blocked"), val(True))) == (
        "(EXISTS (SELECT 1 FROM b WHERE b.t_id = t.id) = $1::boolean)",
        [True],
    )


def test_not_and_boolean_constants_translate() -> None:
    assert translate(expr("not", expr("eq", var("category"), val("x")))) == ("(NOT (t.category = $1::text))", ["x"])
    assert translate(expr("and", val(True), val(False)))[0] == "(TRUE AND FALSE)"


@pytest.mark.parametrize(
    "condition",
    [
        expr("startsWith", var("category"), val("a")),
        expr("exists", var("units"), {"expression": {"operator": "lambda", "operands": []}}),
        expr("eq", {"variable": "request.resource.id"}, val("x")),
        expr("eq", var("unknown_attribute"), val("x")),
        expr("eq", var("category"), var("category")),
        expr("lt", var("unit"), val("")),
        expr("hasIntersection", var("category"), val(["a"])),
        expr("and"),
        val("just a string"),
        {"variable": "request.resource.attr.category"},
    ],
    ids=[
        "unknown-function",
        "lambda",
        "resource-id",
        "unknown-attribute",
        "two-variables",
        "ordering-impossible",
        "intersection-on-scalar",
        "empty-and",
        "bare-string",
        "bare-variable",
    ],
)
def test_anything_the_translator_does_not_know_is_refused_never_allowed(condition: dict[str, Any]) -> None:
    with pytest.raises(UntranslatablePlan):
        translate(condition)


def test_every_kind_maps_exactly_the_attributes_of_its_resource_schema() -> None:
    checked = 0
    for kind in KINDS.values():
        policy = (PROJECT / "policies" / "resources" / f"{kind.name}.yaml").read_text()
        schema_name = policy.split("resourceSchema:")[1].split("cerbos:///")[1].split()[0]
        schema = json.loads((PROJECT / "policies" / "_schemas" / schema_name).read_text())
        if schema_name == "directory.json":
            assert set(kind.attributes) <= set(schema["properties"]), kind.name
        else:
            assert set(schema["required"]) == set(kind.attributes) == set(schema["properties"]), kind.name
        checked += 1
    assert checked == len(KINDS) >= 16


def test_every_kind_has_a_resource_policy() -> None:
    for kind in KINDS.values():
        assert (PROJECT / "policies" / "resources" / f"{kind.name}.yaml").exists(), kind.name


SCOPE_TEXT = "(SELECT scope FROM s WHERE s.id = t.unit_id)"
SCOPE_SQL = sql("(SELECT scope FROM s WHERE s.id = t.unit_id)")
NATIONAL = SqlFilter("conditional", sql("(t.category <> ", value("sensitive", "text"), ")"))


def test_scopes_whose_plan_is_the_national_one_get_no_branch_and_no_scope_lookup() -> None:
    combined = combine_scoped(SCOPE_SQL, [("fjordvik", NATIONAL), ("haldal", NATIONAL)], NATIONAL)
    assert combined == NATIONAL


def test_a_scope_with_its_own_plan_keeps_its_branch_and_every_value_stays_a_parameter() -> None:
    local = SqlFilter("conditional", sql("(t.age >= ", value(16, "integer"), ")"))
    combined = combine_scoped(SCOPE_SQL, [("fjordvik", local), ("haldal", NATIONAL)], NATIONAL)
    assert combined.where.render() == (
        f"(CASE coalesce({SCOPE_TEXT}, '') WHEN $1::text THEN ((t.age >= $2::integer)) "
        "ELSE ((t.category <> $3::text)) END)",
        ["fjordvik", 16, "sensitive"],
    )


def test_plans_that_differ_only_in_the_order_of_or_operands_count_as_the_same_plan() -> None:
    care = expr("in", val(U1), var("units"))
    grant = expr("eq", var("unit"), val(U2))
    national_condition = expr("and", expr("ne", var("category"), val("sensitive")), expr("or", care, grant))
    scoped_condition = expr("and", expr("or", grant, care), expr("ne", var("category"), val("sensitive")))
    filters = [
        SqlFilter("conditional", Translator(ATTRS).where(condition), condition_key(condition))
        for condition in (national_condition, scoped_condition)
    ]
    national, scoped = filters
    assert scoped.where != national.where
    assert combine_scoped(SCOPE_SQL, [("fjordvik", scoped)], national) == national


def test_plans_with_different_operands_are_not_the_same_plan() -> None:
    first = expr("or", expr("eq", var("unit"), val(U1)), expr("eq", var("unit"), val(U2)))
    second = expr("or", expr("eq", var("unit"), val(U1)), expr("ne", var("unit"), val(U2)))
    assert condition_key(first) != condition_key(second)
