"""SQL fragments (pure functions): text from the code, identifiers from declarations, values only as
parameters, numbered when the whole statement is rendered."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import BadUserInput
from gateway.resources import KINDS
from gateway.sql import const, ident, join, sql, value
from gateway.write_input import check_order, check_text


def test_values_travel_as_parameters_numbered_in_the_order_they_stand() -> None:
    hostile = "x'); DROP TABLE patient; --"
    inner = sql("a = ", value(hostile, "text"))
    statement = sql(
        "SELECT 1 WHERE ", value(3, "integer"), " < b AND ", inner, " AND c = ANY(", value([1], "int[]"), ")"
    )
    text, values = statement.render()
    assert text == "SELECT 1 WHERE $1::integer < b AND a = $2::text AND c = ANY($3::int[])"
    assert values == [3, hostile, [1]]
    assert "DROP" not in text


def test_fragments_compose_without_renumbering_by_hand() -> None:
    left, right = sql("x = ", value(1, "integer")), sql("y = ", value(2, "integer"))
    assert join([left, right], " AND ").render() == ("x = $1::integer AND y = $2::integer", [1, 2])
    assert (right + sql(" OR ") + left).render() == ("y = $1::integer OR x = $2::integer", [2, 1])


@pytest.mark.parametrize("name", ["patient; DROP", "Patient", "a b", "a-b", "", "x" * 64, 'a"b'])
def test_an_identifier_that_is_not_plain_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        ident(name)


@pytest.mark.parametrize("text", ["it's", "a\\b", "x;--\n"])
def test_a_constant_that_would_need_escaping_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="declared name"):
        const(text)


@pytest.mark.parametrize("pg_type", ["text; DROP TABLE x", "uuid)", "Text"])
def test_a_parameter_type_that_is_not_a_type_name_is_refused(pg_type: str) -> None:
    with pytest.raises(ValueError, match="type name"):
        value(1, pg_type)


def test_only_text_from_the_code_and_fragments_make_sql() -> None:
    with pytest.raises(TypeError):
        sql("SELECT ", 1)  # type: ignore[arg-type]


def test_every_declared_kind_renders_its_select_list_from_identifiers_only() -> None:
    for kind in KINDS.values():
        text, values = kind.select_list().render()
        assert values == [] and text.startswith(f"{kind.alias}.")
        assert all(column.replace("_", "").isalnum() for column in kind.columns)


@pytest.mark.parametrize(
    ("given", "required", "problem"),
    [
        ("", True, "blank"),
        ("   ", True, "blank"),
        ("a\x00b", True, "NUL"),
        ("x" * 11, True, "at most"),
        (None, True, "required"),
    ],
)
def test_text_is_refused_when_blank_too_long_or_holding_nul(given: Any, required: bool, problem: str) -> None:
    with pytest.raises(BadUserInput, match=problem) as refused:
        check_text(given, "input.title", max_length=10, required=required)
    assert refused.value.extensions["argument"] == "input.title"


def test_text_that_may_be_left_out_passes_as_none_and_good_text_as_it_is() -> None:
    assert check_text(None, "input.reaction", max_length=10, required=False) is None
    assert check_text("Urtikaria", "input.reaction", max_length=10) == "Urtikaria"


def test_an_appointment_must_end_after_it_starts() -> None:
    appointment = KINDS["Appointment"]
    check_order(appointment, {"start_at": 1, "end_at": 2})
    with pytest.raises(BadUserInput) as refused:
        check_order(appointment, {"start_at": 2, "end_at": 2})
    assert refused.value.extensions["argument"] == "input.end"
