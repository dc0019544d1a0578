"""The vocabulary for declaring a resource kind once: its table, its fields as the API shows them, its
filters, its policy attributes and what a write may set.

Everything else derives from a declaration: the store's SQL (select lists, keyset order, filters, the
attributes Cerbos decides on), the GraphQL type with its enums, filter input and write inputs
(resolvers/types.py), the whole-selection JSON shape (gateway/json_sql.py) and the write path
(gateway/write_path.py). The declarations themselves are in gateway/resources.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

from gateway.fhir_map import FhirMap
from gateway.json_sql import (
    Column as JsonColumn,
)
from gateway.json_sql import (
    EnumColumn,
    FloatColumn,
    GlobalId,
    InstantColumn,
    Joined,
    Shape,
    Value,
    Words,
)
from gateway.plan_sql import Attribute, SetOf
from gateway.sql import EMPTY, Sql, ident, join, sql

FilterOp = Literal["eq", "ge", "lt", "set", "has", "include", "prefix"]
Presence = Literal["required", "optional"]


def camel(name: str) -> str:
    """The GraphQL name of a snake_case Python name (as strawberry writes it)."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class EnumType:
    """A closed set of codes stored as text (FHIR codes) and shown as GraphQL enum members."""

    name: str
    description: str
    codes: tuple[str, ...]

    @staticmethod
    def member(code: str) -> str:
        """The GraphQL member name of a stored code: `in-progress` is `IN_PROGRESS`."""
        return code.upper().replace("-", "_")


@dataclass(frozen=True, kw_only=True)
class Field:
    """One field of a kind's GraphQL type. `create` says whether a create input takes it (and must),
    `patch` whether an update may change it; `default` is stored when a create leaves it out."""

    name: str
    description: str
    graphql_name: str | None = None
    create: Presence | None = None
    patch: bool = False
    default: Any = None
    input_description: str | None = None

    @property
    def public_name(self) -> str:
        return self.graphql_name or camel(self.name)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this field is read from."""
        return ()

    def shape(self) -> Shape | None:
        """How PostgreSQL writes this field as JSON, or None when only a resolver can answer it."""
        return None

    def column_types(self) -> dict[str, str]:
        """The PostgreSQL type of each of its columns, for writes."""
        return {}

    @property
    def writable(self) -> bool:
        return self.create is not None or self.patch


@dataclass(frozen=True, kw_only=True)
class OneColumn(Field):
    """A field stored in one column and shown as PostgreSQL writes it in JSON."""

    column: str
    nullable: bool = False
    pg_type: ClassVar[str] = "text"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def column_types(self) -> dict[str, str]:
        return {self.column: self.pg_type}

    def shape(self) -> Shape | None:
        return JsonColumn(self.column)


@dataclass(frozen=True, kw_only=True)
class Text(OneColumn):
    """A string column. `permission` names a field-level action checked before it is shown."""

    max_length: int = 2000
    permission: str | None = None
    # A regular expression the whole text must match, and what it means, for the error message.
    pattern: tuple[str, str] | None = None

    def shape(self) -> Shape | None:
        return None if self.permission else JsonColumn(self.column)


@dataclass(frozen=True, kw_only=True)
class Flag(OneColumn):
    """A boolean column."""

    pg_type = "boolean"


@dataclass(frozen=True, kw_only=True)
class Count(OneColumn):
    """A whole number column."""

    pg_type = "integer"


@dataclass(frozen=True, kw_only=True)
class Choice(OneColumn):
    """A column holding one code of an enum."""

    enum: EnumType

    def shape(self) -> Shape | None:
        return EnumColumn(self.column)


@dataclass(frozen=True, kw_only=True)
class Instant(OneColumn):
    """A point in time (timestamptz)."""

    pg_type = "timestamptz"

    def shape(self) -> Shape | None:
        return InstantColumn(self.column)


@dataclass(frozen=True, kw_only=True)
class Day(OneColumn):
    """A calendar date."""

    pg_type = "date"


@dataclass(frozen=True, kw_only=True)
class Coded(Field):
    """A code from a code table (FHIR Coding) in `<prefix>_system`, `<prefix>`, `<prefix>_display`;
    `systems` are the code systems it takes and `concepts` the kinds of concept (code_concept.kind)."""

    prefix: str = "code"
    systems: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"{self.prefix}_system", self.prefix, f"{self.prefix}_display")

    def shape(self) -> Shape | None:
        system, code, display = self.columns
        return Value({"system": JsonColumn(system), "code": JsonColumn(code), "display": JsonColumn(display)})

    def column_types(self) -> dict[str, str]:
        return dict.fromkeys(self.columns, "text")


@dataclass(frozen=True, kw_only=True)
class Measured(Field):
    """A measured amount with its UCUM unit (FHIR Quantity); null when the value column is."""

    value_column: str
    unit_column: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.value_column, self.unit_column)

    def shape(self) -> Shape | None:
        return Value(
            {"value": FloatColumn(self.value_column), "unit": JsonColumn(self.unit_column)},
            null_unless=self.value_column,
        )

    def column_types(self) -> dict[str, str]:
        return {self.value_column: "numeric", self.unit_column: "text"}


@dataclass(frozen=True, kw_only=True)
class Span(Field):
    """A period (FHIR Period) from two columns, of times or (`dates`) of calendar days; an open end
    means ongoing."""

    start: str
    end: str
    dates: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.start, self.end)

    def shape(self) -> Shape | None:
        point = JsonColumn if self.dates else InstantColumn
        return Value({"start": point(self.start), "end": point(self.end)})

    def column_types(self) -> dict[str, str]:
        return dict.fromkeys(self.columns, "date" if self.dates else "timestamptz")


@dataclass(frozen=True, kw_only=True)
class Named(Field):
    """A person's name (FHIR HumanName) from a family name and space-separated given names."""

    family: str
    given: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.family, self.given)

    def shape(self) -> Shape | None:
        return Value(
            {"family": JsonColumn(self.family), "given": Words(self.given), "text": Joined((self.given, self.family))}
        )

    def column_types(self) -> dict[str, str]:
        return dict.fromkeys(self.columns, "text")


@dataclass(frozen=True, kw_only=True)
class Ref(Field):
    """A reference to one resource of another kind (`target`, a type name) by the id in `column`:
    authorized like any item. A create input takes it as `<name>Id`; `writer` fills it with the
    writing practitioner when the input leaves it out."""

    target: str
    column: str
    writer: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def column_types(self) -> dict[str, str]:
        return {self.column: "uuid"}


@dataclass(frozen=True, kw_only=True)
class Many(Field):
    """A connection of the resources of `target` whose `parent_column` holds this resource's id."""

    target: str
    parent_column: str
    filtered: bool = True
    ordered: bool = True
    default_first: int | None = None
    input_type_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class History(Field):
    """Every version of this resource, newest first, with who made it, when and through which app."""


@dataclass(frozen=True)
class Transition:
    """A named change of one column to one value (cancelling an appointment), decided by policy as its own
    action, so that it can be allowed to people who may not change anything else."""

    action: str
    column: str
    to: str
    allowed_from: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Filter:
    """A filter an API argument maps to: `column op value`; `enum` types the argument, and the
    argument's name is `name` (snake_case; camelCase in GraphQL)."""

    name: str
    column: str
    op: FilterOp
    pg_type: str
    description: str = ""
    enum: EnumType | None = None
    exposed: bool = True
    # A search by it looks for one person: it is audited even when it finds nothing.
    identifies: bool = False
    # For a filter by another resource (pg_type uuid): its type name; the argument is that resource's global id.
    target: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResourceKind:
    """A kind of resource: its Cerbos name, GraphQL type, table, fields and policy attributes.

    `order` is the keyset: sort columns with their types, the id last. `newest_first` says which way
    the default order runs. `patient_column` is None for directory kinds, which are not patient data.
    `fields` are what the API shows, in order; `extra_columns` are further columns the code reads.
    """

    name: str
    type_name: str
    table: str
    alias: str
    order: tuple[tuple[str, str], ...]
    attributes: dict[str, Attribute]
    description: str = ""
    fields: tuple[Field, ...] = ()
    extra_columns: tuple[str, ...] = ()
    patient_column: str | None = "patient_id"
    newest_first: bool = True
    filters: tuple[Filter, ...] = ()
    filter_description: str = ""
    phantom: dict[str, object] = field(default_factory=dict)
    context_attributes: dict[str, Attribute] = field(default_factory=dict)
    node: bool = True
    id_column: str = "id"
    # Writes: whether the API creates and updates this kind, and what a create fills in by itself.
    writable: bool = False
    stamped: tuple[str, ...] = ()
    writer_columns: tuple[str, ...] = ()
    category_from_concept: dict[str, str] = field(default_factory=dict)
    sensitive_codes: bool = False
    ordered_columns: tuple[tuple[str, str], ...] = ()
    transitions: tuple[Transition, ...] = ()
    # The FHIR R4 resource this kind is shown as (gateway/fhir_map.py), None for kinds FHIR does not show.
    fhir: FhirMap | None = None

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Every column a row of this kind is read with."""
        found: dict[str, None] = {self.id_column: None}
        if self.patient_column:
            found[self.patient_column] = None
        if "owning_unit_id" in self.attributes:
            found["owning_unit_id"] = None
        for item in self.fields:
            found.update(dict.fromkeys(item.columns))
        found.update(dict.fromkeys(column for column, _ in self.order))
        found.update(dict.fromkeys(self.extra_columns))
        return tuple(found)

    @property
    def id_type(self) -> str:
        """The PostgreSQL type of the id column."""
        return dict(self.order).get(self.id_column, "uuid")

    @cached_property
    def filter_map(self) -> dict[str, Filter]:
        """The declared filters, and those every node kind has for the other doors (FHIR search): by id,
        by patient and by when it last changed. The API does not show the latter as filter arguments."""
        found = {f.name: f for f in self.filters}
        if self.node:
            hidden = [
                Filter("id", self.id_column, "eq", self.id_type, exposed=False),
                Filter("last_updated_from", "last_updated", "ge", "timestamptz", exposed=False),
                Filter("last_updated_to", "last_updated", "lt", "timestamptz", exposed=False),
            ]
            if self.patient_column is not None:
                hidden.append(Filter("patient_id", self.patient_column, "eq", "uuid", exposed=False))
            if any(isinstance(f, Coded) and f.prefix == "code" for f in self.fields):
                hidden.append(Filter("code_system", "code_system", "eq", "text", exposed=False))
            for spec in hidden:
                found.setdefault(spec.name, spec)
        return found

    def field(self, name: str) -> Field:
        """The field called `name` (snake_case)."""
        for item in self.fields:
            if item.name == name:
                return item
        raise KeyError(f"{self.type_name} has no field {name!r}")

    @cached_property
    def shapes(self) -> dict[str, Shape]:
        """The plain fields as PostgreSQL JSON, by GraphQL name, for whole-selection reads."""
        shapes: dict[str, Shape] = {"id": GlobalId()} if self.node else {}
        for item in self.fields:
            shape = item.shape()
            if shape is not None:
                shapes[item.public_name] = shape
        return shapes

    @property
    def table_sql(self) -> Sql:
        """`table alias`, for FROM clauses."""
        return sql(ident(self.table), " ", ident(self.alias))

    def col(self, column: str) -> Sql:
        """A column of this kind, qualified by its alias."""
        return ident(self.alias, column)

    @cached_property
    def scope_sql(self) -> Sql | None:
        """SQL for the policy scope of a row: the scope of the municipality owning it (patient data only)."""
        if "owning_unit_id" not in self.attributes:
            return None
        return sql(
            "(SELECT m.policy_scope FROM organization o JOIN municipality m ON m.id = o.municipality_id WHERE o.id = ",
            self.col("owning_unit_id"),
            ")",
        )

    @property
    def is_patient_data(self) -> bool:
        return self.patient_column is not None

    @property
    def may_be_entered_in_error(self) -> bool:
        """Journal data may be marked entered in error (kept, hidden from lists): kinds that show the mark."""
        return any(item.columns == ("entered_in_error_at",) for item in self.fields)

    def select_list(self) -> Sql:
        """The columns of a row, qualified by the alias."""
        return self._select_list

    @cached_property
    def _select_list(self) -> Sql:
        return join(self.col(c) for c in self.columns)

    def attribute_select(self) -> Sql:
        """SELECT-list entries that load every policy attribute, named `attr_<name>`."""
        return self._attribute_select

    @cached_property
    def _attribute_select(self) -> Sql:
        parts = []
        for name, attribute in self.attributes.items():
            label = ident(f"attr_{name}")
            if isinstance(attribute, SetOf):
                parts.append(sql("ARRAY(", attribute.sql, ")::text[] AS ", label))
            elif attribute.pg_type in {"boolean", "integer"}:
                parts.append(sql(attribute.sql, " AS ", label))
            else:
                parts.append(sql(attribute.sql, "::text AS ", label))
        return join(parts) if parts else EMPTY
