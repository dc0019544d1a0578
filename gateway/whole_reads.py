"""Whole-selection reads: a query made only of lists and plain fields is answered by PostgreSQL as JSON.

A schema extension, so that the resolvers stay the one definition of the API: before graphql-core
executes an operation, this looks at its selection. When every root field is a list of journal data
and everything under it is a plain field (its JSON shape comes from the kind's declaration), a nested
list, a cursor or pageInfo, the store answers each root field with one statement that builds the JSON
(gateway/json_sql.py),
filtered per level by the same query plans and audited row by row, and execution is skipped. Anything
else (a reference, a count, a field with its own permission, a directive, a mutation) runs through
the resolvers as before. Bad arguments also take the resolver path, which explains them field by field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from gateway.declare import ResourceKind
from gateway.errors import AksonError
from gateway.json_sql import (
    LIST_OF,
    PAGE_INFO_FIELDS,
    Edges,
    ListSelection,
    NodeSelection,
    PageInfo,
    Shape,
    Typename,
    Value,
)
from gateway.resources import KINDS
from gateway.store import ListArgs


class NotWhole(Exception):
    """The selection needs the resolvers."""


@dataclass
class _Planner:
    """Turns an operation's selection into ListSelections, or says it cannot (NotWhole)."""

    context: ExecutionContext
    fragments: dict[str, FragmentDefinitionNode]
    variables: VariableValues

    def fields(self, selection_set: SelectionSetNode | None, type_name: str) -> list[FieldNode]:
        """The fields of a selection set, fragments spread, in order; directives and repeated keys refuse."""
        if selection_set is None:
            raise NotWhole
        found: list[FieldNode] = []
        for node in selection_set.selections:
            if node.directives:
                raise NotWhole
            if isinstance(node, FieldNode):
                found.append(node)
            elif isinstance(node, InlineFragmentNode):
                if node.type_condition is not None and node.type_condition.name.value != type_name:
                    raise NotWhole
                found.extend(self.fields(node.selection_set, type_name))
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.fragments.get(node.name.value)
                if fragment is None or fragment.type_condition.name.value != type_name or fragment.directives:
                    raise NotWhole
                found.extend(self.fields(fragment.selection_set, type_name))
        keys = [(f.alias or f.name).value for f in found]
        if len(keys) != len(set(keys)):
            raise NotWhole
        return found

    def definition(self, type_name: str) -> StrawberryObjectDefinition:
        definition = self.context.schema.get_type_by_name(type_name)
        if not isinstance(definition, StrawberryObjectDefinition):
            raise NotWhole
        return definition

    def strawberry_field(self, type_name: str, name: str) -> StrawberryField:
        converter = self.context.schema.config.name_converter
        for candidate in self.definition(type_name).fields:
            if converter.get_graphql_name(candidate) == name:
                return candidate
        raise NotWhole

    def list_selection(self, type_name: str, node: FieldNode, *, top: bool) -> ListSelection:
        """A connection field (at the root, or nested under a node) as a ListSelection."""
        field = self.strawberry_field(type_name, node.name.value)
        list_of = field.metadata.get(LIST_OF)
        if list_of is None:
            raise NotWhole
        kind, column = list_of
        if (column is None) != top:
            raise NotWhole
        graphql_type = self.context.schema._schema.get_type(type_name)
        raw = get_argument_values(graphql_type.fields[node.name.value], node, self.variables)  # type: ignore[union-attr]
        schema = self.context.schema
        args = ListArgs.of(
            **convert_arguments(raw, field.arguments, schema.schema_converter.scalar_registry, schema.config)
        )
        filters = kind.filter_map
        if any(name in filters and filters[name].identifies for name, _ in args.filters):
            raise NotWhole  # a search for one person is audited even when it finds nothing: the store's list does that
        return self.connection(kind, column, args, node)

    def connection(self, kind: ResourceKind, column: str | None, args: Any, node: FieldNode) -> ListSelection:
        item_type = kind.type_name
        parts: list[tuple[str, Edges | PageInfo | Typename]] = []
        for sub in self.fields(node.selection_set, f"{item_type}Connection"):
            key, name = (sub.alias or sub.name).value, sub.name.value
            if name == "edges":
                parts.append((key, self.edges(item_type, sub)))
            elif name == "pageInfo":
                asked = [((s.alias or s.name).value, s.name.value) for s in self.fields(sub.selection_set, "PageInfo")]
                if not {name for _, name in asked} <= set(PAGE_INFO_FIELDS):
                    raise NotWhole
                parts.append((key, PageInfo(tuple(asked))))
            elif name == "__typename":
                parts.append((key, Typename(f"{item_type}Connection")))
            else:
                raise NotWhole
        return ListSelection(kind, column, args, item_type, tuple(parts))

    def edges(self, item_type: str, node: FieldNode) -> Edges:
        parts: list[tuple[str, str | Typename | NodeSelection]] = []
        for sub in self.fields(node.selection_set, f"{item_type}Edge"):
            key, name = (sub.alias or sub.name).value, sub.name.value
            if name == "cursor":
                parts.append((key, "cursor"))
            elif name == "node":
                parts.append((key, self.node(item_type, sub)))
            elif name == "__typename":
                parts.append((key, Typename(f"{item_type}Edge")))
            else:
                raise NotWhole
        return Edges(tuple(parts))

    def node(self, item_type: str, node: FieldNode) -> NodeSelection:
        kind = KINDS.get(item_type)
        if kind is None or not kind.node:
            raise NotWhole
        shapes = kind.shapes
        parts: list[tuple[str, Shape | Typename | ListSelection]] = []
        for sub in self.fields(node.selection_set, item_type):
            key, name = (sub.alias or sub.name).value, sub.name.value
            if name == "__typename":
                parts.append((key, Typename(item_type)))
            elif name in shapes:
                parts.append((key, self.shape(shapes[name], sub)))
            else:
                parts.append((key, self.list_selection(item_type, sub, top=False)))
        return NodeSelection(tuple(parts))

    def shape(self, shape: Shape, node: FieldNode) -> Shape:
        """A plain field, cut to the sub-fields asked for when it is a value object."""
        if not isinstance(shape, Value):
            if node.selection_set is not None:
                raise NotWhole
            return shape
        asked: dict[str, Shape] = {}
        for sub in node.selection_set.selections if node.selection_set else ():
            if not isinstance(sub, FieldNode) or sub.directives or sub.name.value not in shape.fields:
                raise NotWhole
            key = (sub.alias or sub.name).value
            if key in asked:
                raise NotWhole
            asked[key] = self.shape(shape.fields[sub.name.value], sub)
        if not asked:
            raise NotWhole
        return Value(asked, shape.null_unless)


def plan(context: ExecutionContext) -> list[tuple[str, ListSelection]] | None:
    """The root fields of the operation as whole-selection reads, or None when the resolvers must run."""
    document = context.graphql_document
    if document is None:
        return None
    operation = get_operation_ast(document, context.operation_name)
    if not isinstance(operation, OperationDefinitionNode) or operation.operation != OperationType.QUERY:
        return None
    coerced = get_variable_values(context.schema._schema, operation.variable_definitions or (), context.variables or {})
    if isinstance(coerced, list):
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    planner = _Planner(context, fragments, coerced)
    try:
        if operation.directives:
            raise NotWhole
        return [
            ((node.alias or node.name).value, planner.list_selection("Query", node, top=True))
            for node in planner.fields(operation.selection_set, "Query")
        ]
    except (NotWhole, GraphQLError, AksonError, TypeError, ValueError):
        return None


class WholeSelectionReads(SchemaExtension):
    """Answers whole-selection queries from PostgreSQL's JSON and skips graphql-core's execution."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        selections = plan(context)
        if selections:
            store = context.context.store
            try:
                answers = [(key, await store.list_json(selection)) for key, selection in selections]
            except AksonError:
                answers = None
            if answers is not None:
                body = ",".join(f"{orjson.dumps(key).decode()}:{text}" for key, text in answers)
                context.result = ExecutionResult(data=orjson.Fragment("{" + body + "}"), errors=None)  # type: ignore[arg-type]
        yield
