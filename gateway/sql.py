"""SQL fragments: text written in the code, identifiers from declarations, values as parameters.

Hand-written because asyncpg takes one string and positional parameters and nothing more, and no
maintained Python library composes PostgreSQL text with parameters that travel with it (graphile's
pg-sql2 does this for JavaScript; this follows it). A fragment is a sequence of trusted text and
values; values become `$n` placeholders only when a whole statement is rendered, so fragments compose
freely without renumbering. There are three ways in, and only three:

- `sql(...)`: text that stands in the source code (ruff's S608 refuses SQL built by string formatting),
- `ident(...)` and `const(...)`: a name of a table, column or alias, or a kind or type name, that a
  declaration states (checked to be plain, so even a mistake cannot become syntax),
- `value(...)`: anything else, above all what a client sent, as a typed parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, LiteralString

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_CONSTANT = re.compile(r"[A-Za-z0-9_:.\-\" ]{0,200}")
_PG_TYPE = re.compile(r"[a-z_][a-z0-9_ ]{0,40}(\[\])?")


@dataclass(frozen=True, slots=True)
class Param:
    """One value of a fragment, sent apart from the text and cast to `pg_type`."""

    value: Any
    pg_type: str


def _merged(parts: list[str | Param]) -> tuple[str | Param, ...]:
    """The parts with adjacent text joined: a large statement renders in a few steps, not thousands."""
    out: list[str | Param] = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] = out[-1] + part
        elif part != "":
            out.append(part)
    return tuple(out)


class Sql:
    """A piece of SQL: trusted text and parameters, in order."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str | Param, ...]) -> None:
        self.parts = parts

    def __add__(self, other: Sql) -> Sql:
        return Sql(_merged([*self.parts, *other.parts]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sql) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(tuple(p if isinstance(p, str) else (type(p.value).__name__, p.pg_type) for p in self.parts))

    def __repr__(self) -> str:
        text, values = self.render()
        return f"Sql({text!r}, {values!r})"

    @property
    def values(self) -> list[Any]:
        """The parameters, in the order their placeholders are numbered."""
        return [p.value for p in self.parts if isinstance(p, Param)]

    def render(self) -> tuple[str, list[Any]]:
        """The statement text with `$1..$n` placeholders, and the values to send with it."""
        text: list[str] = []
        values: list[Any] = []
        for part in self.parts:
            if isinstance(part, str):
                text.append(part)
            else:
                values.append(part.value)
                text.append(f"${len(values)}::{part.pg_type}")
        return "".join(text), values


def sql(*parts: LiteralString | Sql) -> Sql:
    """A fragment from text in the source and other fragments, concatenated."""
    flat: list[str | Param] = []
    for part in parts:
        if isinstance(part, Sql):
            flat.extend(part.parts)
        elif isinstance(part, str):
            flat.append(part)
        else:
            raise TypeError(f"SQL is made of text in the code and fragments, not {type(part).__name__}")
    return Sql(_merged(flat))


def ident(*names: str) -> Sql:
    """A (qualified) identifier a declaration names: `ident("o", "name")` is `o.name`."""
    for name in names:
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a plain SQL identifier: {name!r}")
    return Sql((".".join(names),))


def const(text: str) -> Sql:
    """A string literal that a declaration states (a kind or type name): quoted, and checked to hold
    nothing that would need escaping."""
    if not _CONSTANT.fullmatch(text):
        raise ValueError(f"not a declared name: {text!r}")
    return Sql((f"'{text}'",))


def value(item: Any, pg_type: str) -> Sql:
    """A parameter: the value travels apart from the text, cast to `pg_type`."""
    if not _PG_TYPE.fullmatch(pg_type):
        raise ValueError(f"not a PostgreSQL type name: {pg_type!r}")
    return Sql((Param(item, pg_type),))


def join(fragments: Iterable[Sql], separator: LiteralString = ", ") -> Sql:
    """The fragments with `separator` between them."""
    flat: list[str | Param] = []
    for index, fragment in enumerate(fragments):
        if index:
            flat.append(separator)
        flat.extend(fragment.parts)
    return Sql(_merged(flat))


EMPTY = Sql(())
TRUE = sql("TRUE")
FALSE = sql("FALSE")
