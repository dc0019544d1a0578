"""Writes in GraphQL, built from the declarations: `create<Kind>`, `update<Kind>` and `enteredInError` for
every writable kind, with their inputs (`<Kind>Input`, `<Kind>Patch`).

Inputs are turned into plain values here (enum codes, journal ids from global ids of the right kind,
nested values as dicts); gateway/write_input.py checks them and gateway/write_path.py writes them, in
one transaction with the policy decision and the audit rows.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay

from gateway.declare import (
    Choice,
    Coded,
    Count,
    Day,
    EnumType,
    Field,
    Flag,
    Instant,
    Many,
    Measured,
    Named,
    Ref,
    ResourceKind,
    Span,
    Text,
    Transition,
)
from gateway.errors import BadUserInput
from gateway.resources import KINDS
from gateway.store import parse_global_id
from resolvers.common import Info, to_one
from resolvers.types import TYPES, enum_of

MODULE = __name__
INPUTS: dict[str, Any] = {}


def _register(name: str, cls: Any) -> Any:
    INPUTS[name] = cls
    setattr(sys.modules[MODULE], name, cls)
    return cls


@strawberry.input(description="A code from a code table: the system and the code; the display is looked up.")
class CodingInput:
    system: str = strawberry.field(description="The code system's URI (e.g. http://loinc.org).")
    code: str = strawberry.field(description="The code within the system (e.g. 8480-6).")
    display: str | None = strawberry.field(
        default=None, description="The code's meaning; checked against the code table when given."
    )


@strawberry.input(description="A measured amount with its UCUM unit; the unit is the code's when left out.")
class QuantityInput:
    value: float = strawberry.field(description="The numerical value.")
    unit: str | None = strawberry.field(default=None, description="The unit, in UCUM notation (e.g. mm[Hg]).")


@strawberry.input(description="A time interval; an open end means ongoing.")
class PeriodInput:
    start: datetime = strawberry.field(description="Start, inclusive, with a time zone.")
    end: datetime | None = strawberry.field(default=None, description="End, exclusive; leave out while ongoing.")


@strawberry.input(description="A span of calendar days; an open end means ongoing.")
class DatePeriodInput:
    start: date = strawberry.field(description="First day.")
    end: date | None = strawberry.field(default=None, description="Last day; leave out while ongoing.")


@strawberry.input(description="A person's name.")
class HumanNameInput:
    family: str = strawberry.field(description="Family name (surname).")
    given: list[str] = strawberry.field(description="Given names, in order.")


def _input_type(kind: ResourceKind, item: Field) -> Any:
    """The GraphQL input type of a writable field."""
    if isinstance(item, Text):
        return str
    if isinstance(item, Choice):
        return enum_of(item.enum)
    if isinstance(item, Instant):
        return datetime
    if isinstance(item, Day):
        return date
    if isinstance(item, Flag):
        return bool
    if isinstance(item, Count):
        return int
    if isinstance(item, Coded):
        return CodingInput
    if isinstance(item, Measured):
        return QuantityInput
    if isinstance(item, Span):
        return DatePeriodInput if item.dates else PeriodInput
    if isinstance(item, Named):
        return HumanNameInput
    if isinstance(item, Ref):
        return strawberry.ID
    if isinstance(item, Many):
        return list[_nested_input(kind, item)]  # type: ignore[misc]
    raise TypeError(f"{kind.type_name}.{item.name}: no input form for {type(item).__name__}")


def _python_name(item: Field) -> str:
    return f"{item.name}_id" if isinstance(item, Ref) else item.name


def _input_name(item: Field) -> str:
    return f"{item.public_name}Id" if isinstance(item, Ref) else item.public_name


def _make_input(
    name: str,
    description: str,
    kind: ResourceKind,
    items: list[tuple[Field, bool]],
    extra: dict[str, Any] | None = None,
) -> Any:
    """An input type from (field, required) pairs."""
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": MODULE}
    required_first = sorted(items, key=lambda pair: not pair[1])
    for item, required in required_first:
        python_type = _input_type(kind, item)
        attribute = _python_name(item)
        help_text = item.input_description or item.description
        if isinstance(item, Choice) and item.default is not None:
            help_text += f" {EnumType.member(item.default)} when left out."
        if required:
            annotations[attribute] = python_type
            namespace[attribute] = strawberry.field(name=_input_name(item), description=help_text)
        else:
            annotations[attribute] = python_type | None
            namespace[attribute] = strawberry.field(
                default=strawberry.UNSET, name=_input_name(item), description=help_text
            )
    for attribute, (python_type, field) in (extra or {}).items():
        annotations[attribute] = python_type
        namespace[attribute] = field
    namespace["__annotations__"] = annotations
    return _register(name, strawberry.input(type(name, (), namespace), description=description))


def _is_patient(kind: ResourceKind, item: Field) -> bool:
    return isinstance(item, Ref) and item.column == kind.patient_column


def _nested_input(kind: ResourceKind, item: Many) -> Any:
    """The input of what a create makes with its parent (a report's results)."""
    name = item.input_type_name or f"{kind.type_name}{item.public_name[0].upper()}{item.public_name[1:]}Input"
    if name in INPUTS:
        return INPUTS[name]
    target = KINDS[item.target]
    parent_refs = {kind.type_name, "Encounter", "Patient"}
    items = [
        (f, f.create == "required")
        for f in target.fields
        if f.create is not None and not (isinstance(f, Ref) and f.target in parent_refs)
    ]
    items = [(f, required and not isinstance(f, Instant)) for f, required in items]
    return _make_input(
        name,
        f"One {target.type_name} made with its {kind.type_name}: the same patient, encounter and unit.",
        target,
        items,
    )


def create_input(kind: ResourceKind) -> Any:
    """`<Kind>Input`: what a create takes."""
    items = [(f, f.create == "required") for f in kind.fields if f.create is not None]
    extra: dict[str, Any] = {}
    if kind.is_patient_data and kind.patient_column != "id":
        extra["patient_national_identity_number"] = (
            str | None,
            strawberry.field(
                default=strawberry.UNSET,
                name="patientNationalIdentityNumber",
                description="The patient's national identity number, instead of patientId (e.g. for a laboratory).",
            ),
        )
    return _make_input(f"{kind.type_name}Input", f"A new {kind.type_name}. {kind.description}", kind, items, extra)


def patch_input(kind: ResourceKind) -> Any:
    """`<Kind>Patch`: what an update may change; a field left out stays, a nullable one given null is cleared."""
    items = [(f, False) for f in kind.fields if f.patch]
    return _make_input(
        f"{kind.type_name}Patch",
        f"Changes to {kind.type_name} resources: fields left out stay as they are; null clears a field that may "
        "be empty.",
        kind,
        items,
    )


def plain(kind: ResourceKind, given: Any, prefix: str = "input") -> dict[str, Any]:
    """An input object as the plain values the write path checks: unset fields left out, enums as codes,
    global ids as journal ids of the kind the field names."""
    out: dict[str, Any] = {}
    for item in kind.fields:
        attribute = _python_name(item)
        if not hasattr(given, attribute):
            continue
        raw = getattr(given, attribute)
        if raw is strawberry.UNSET:
            continue
        where = f"{prefix}.{_input_name(item)}"
        if raw is None:
            out[item.name] = None
        elif isinstance(item, Ref):
            out[item.name] = _journal_id(str(raw), KINDS[item.target], where)
        elif isinstance(item, Many):
            out[item.name] = [plain(KINDS[item.target], entry, f"{where}.{index}") for index, entry in enumerate(raw)]
        elif isinstance(item, Named):
            out[item.name] = {"family": raw.family, "given": " ".join(raw.given)}
        elif isinstance(raw, Enum):
            out[item.name] = raw.value
        elif isinstance(item, Coded | Measured | Span):
            out[item.name] = {k: v for k, v in vars(raw).items() if v is not strawberry.UNSET}
        else:
            out[item.name] = raw
    number = getattr(given, "patient_national_identity_number", strawberry.UNSET)
    if number is not strawberry.UNSET and number is not None:
        out["patient_national_identity_number"] = number
    return out


def _journal_id(raw: str, expected: ResourceKind, where: str) -> str:
    try:
        _, journal_id = parse_global_id(raw, expected)
    except BadUserInput as exc:
        raise BadUserInput(f"{where}: {exc.message}", argument=where) from exc
    return journal_id


IdempotencyKeyArg = Annotated[
    str | None,
    strawberry.argument(
        description="Your key for this write (1-200 characters), unique per app for at least 24 hours: a retry "
        "with the same key and input returns the first result and writes nothing more."
    ),
]
ExpectedVersionArg = Annotated[
    int,
    strawberry.argument(description="The version you last read: the update is refused with CONFLICT if it changed."),
]


def _mutations(kind: ResourceKind) -> dict[str, Any]:
    node = TYPES[kind.type_name]
    make_input, make_patch = create_input(kind), patch_input(kind)

    async def create(self: Any, info: Info, input: Any, idempotency_key: str | None = None) -> Any:
        row, rid = await info.context.journal.create(kind, plain(kind, input), idempotency_key)
        if row is None:
            return await to_one(info, kind, rid)
        return node.from_row(row)

    async def update(self: Any, info: Info, id: strawberry.ID, expected_version: int, input: Any) -> Any:
        rid = _journal_id(str(id), kind, "id")
        return node.from_row(await info.context.journal.update(kind, rid, expected_version, plain(kind, input)))

    create.__annotations__ = {
        "info": Info,
        "input": Annotated[make_input, strawberry.argument(description=f"The new {kind.type_name}.")],
        "idempotency_key": IdempotencyKeyArg,
        "return": node,
    }
    update.__annotations__ = {
        "info": Info,
        "id": Annotated[strawberry.ID, strawberry.argument(description=f"The {kind.type_name}'s global id.")],
        "expected_version": ExpectedVersionArg,
        "input": Annotated[make_patch, strawberry.argument(description="What to change.")],
        "return": node,
    }
    mutations = {
        f"create_{_snake(kind.type_name)}": strawberry.mutation(
            resolver=create,
            description=f"Record a new {kind.type_name}: authorized by policy (`create`, within your app's `c` "
            "scopes) and audited in the same transaction.",
        ),
        f"update_{_snake(kind.type_name)}": strawberry.mutation(
            resolver=update,
            description=f"Change a {kind.type_name}: the earlier version is kept in its history. Authorized by "
            "policy (`update`, within your app's `u` scopes) and audited in the same transaction.",
        ),
    }
    for step in kind.transitions:
        mutations[f"{step.action}_{_snake(kind.type_name)}"] = _transition(kind, step)
    return mutations


def _transition(kind: ResourceKind, step: Transition) -> Any:
    node = TYPES[kind.type_name]

    async def take(self: Any, info: Info, id: strawberry.ID, expected_version: int | None = None) -> Any:
        rid = _journal_id(str(id), kind, "id")
        return node.from_row(await info.context.journal.transition(kind, rid, step, expected_version))

    take.__annotations__ = {
        "info": Info,
        "id": Annotated[strawberry.ID, strawberry.argument(description=f"The {kind.type_name}'s global id.")],
        "expected_version": Annotated[
            int | None,
            strawberry.argument(description="The version you last read, if you want a CONFLICT when it changed."),
        ],
        "return": node,
    }
    return strawberry.mutation(
        resolver=take,
        description=f"{step.description} Authorized by policy (`{step.action}`, within your app's `u` scopes) and "
        "audited; the earlier version is kept in its history.",
    )


def _snake(type_name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in type_name).lstrip("_")


async def entered_in_error(
    self: Any,
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="The global id of any resource of the journal.")],
    reason: Annotated[str, strawberry.argument(description="Why it was wrong (1-1000 characters).")],
) -> relay.Node:
    """Mark a resource entered in error."""
    kind, rid = parse_global_id(str(id))
    row = await info.context.journal.entered_in_error(kind, rid, reason)
    return TYPES[kind.type_name].from_row(row)  # type: ignore[no-any-return]


def _build() -> Any:
    namespace: dict[str, Any] = {"__module__": MODULE}
    for kind in KINDS.values():
        if kind.writable:
            namespace.update(_mutations(kind))
    namespace["entered_in_error"] = strawberry.mutation(
        resolver=entered_in_error,
        description="Mark a resource entered in error: a journal never deletes. It is kept as it was, hidden from "
        "lists (unless a list asks for it), shown by id and in its history with who marked it and why. "
        "Authorized by policy (`entered_in_error`, within your app's `u` scopes) and audited.",
    )
    return strawberry.type(
        type("JournalMutations", (), namespace),
        description="Writes to the journal: each one authorized by policy and audited in its own transaction.",
    )


JournalMutations = _build()
