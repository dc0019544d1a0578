"""Checks on a request's document and variables after parsing and before validation: the size of the
selection with fragments expanded, and text that PostgreSQL cannot keep.

graphql-core's validation rules (the depth and alias limits among them) and execution walk the selection
with every fragment spread expanded, so a small document whose fragments each spread the one before twice
asks for 2^N fields. The token, depth and alias limits do not see that; this count does. It counts the
selection as if every spread were expanded, remembering each fragment's count, so counting costs one
visit per fragment however large the expansion is. Strawberry has no such extension, hence this module.

PostgreSQL text cannot hold the NUL character; a string argument holding one is refused here, naming
the argument, instead of failing inside a statement after the decision to allow it was recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    visit,
)
from graphql.language import ArgumentNode, Visitor
from strawberry.extensions import ValidationCache

SELECTION_TOO_LARGE = "SELECTION_TOO_LARGE"
NUL = "\x00"


def expanded_size(document: DocumentNode) -> int:
    """How many fields the document's operations select with every fragment spread expanded.

    A fragment that spreads itself (directly or not) counts as empty here; validation reports the cycle."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    sizes: dict[str, int] = {}
    visiting: set[str] = set()

    def fragment_size(name: str) -> int:
        if name in sizes:
            return sizes[name]
        definition = fragments.get(name)
        if definition is None or name in visiting:
            return 0
        visiting.add(name)
        sizes[name] = selection_size(definition.selection_set)
        visiting.discard(name)
        return sizes[name]

    def selection_size(selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += 1 + selection_size(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment_size(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                total += selection_size(selection.selection_set)
        return total

    return sum(selection_size(d.selection_set) for d in document.definitions if isinstance(d, OperationDefinitionNode))


def _values(node: ValueNode, path: str) -> Iterator[tuple[ValueNode, str]]:
    """Every value inside an argument's value, with its path (`filter.code`); list items keep the path."""
    yield node, path
    if isinstance(node, ListValueNode):
        for item in node.values:
            yield from _values(item, path)
    elif isinstance(node, ObjectValueNode):
        for field in node.fields:
            yield from _values(field.value, f"{path}.{field.name.value}")


def _variable_nul_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str) and NUL in value:
        yield path
    elif isinstance(value, list):
        for item in value:
            yield from _variable_nul_paths(item, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _variable_nul_paths(item, f"{path}.{key}")


def _may_hold_nul(document: DocumentNode) -> bool:
    """Whether the document's text has a NUL or any unicode escape, without walking it."""
    source = document.loc.source.body if document.loc else None
    return source is None or NUL in source or "\\u" in source


def nul_argument(document: DocumentNode, variables: dict[str, Any] | None) -> str | None:
    """The first argument whose text holds a NUL character, as a dotted path (`input.text`), or None. A
    variable is named by the argument it is passed to (or as `$name` if it is passed to none)."""
    in_variables = [
        (name, path) for name, value in (variables or {}).items() for path in _variable_nul_paths(value, "")
    ]
    if not in_variables and not _may_hold_nul(document):
        return None
    literals: list[str] = []
    passed_to: dict[str, str] = {}

    class Arguments(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            for value, path in _values(node.value, node.name.value):
                if isinstance(value, StringValueNode) and NUL in value.value:
                    literals.append(path)
                elif isinstance(value, VariableNode):
                    passed_to.setdefault(value.name.value, path)

    visit(document, Arguments())
    if in_variables:
        name, path = in_variables[0]
        return passed_to.get(name, f"${name}") + path
    return literals[0] if literals else None


class CheckedValidation(ValidationCache):
    """Strawberry's validation cache, refusing first what validation and execution must not walk: a
    selection over the limit once fragments are expanded (SELECTION_TOO_LARGE) and text holding NUL
    (BAD_USER_INPUT naming the argument)."""

    def __init__(self, max_selections: int, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.max_selections = max_selections

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        refusal = None if document is None else self._refusal(document, context.variables)
        if refusal is not None:
            context.pre_execution_errors = [refusal]
            yield
            return
        yield from super().on_validate()

    def _refusal(self, document: DocumentNode, variables: dict[str, Any] | None) -> GraphQLError | None:
        size = expanded_size(document)
        if size > self.max_selections:
            return GraphQLError(
                f"the query selects {size} fields once its fragments are expanded; at most {self.max_selections} "
                "are allowed",
                extensions={"code": SELECTION_TOO_LARGE, "limit": self.max_selections},
            )
        argument = nul_argument(document, variables)
        if argument is not None:
            return GraphQLError(
                f"`{argument}` holds the NUL character (U+0000), which the journal cannot keep",
                extensions={"code": "BAD_USER_INPUT", "argument": argument},
            )
        return None
