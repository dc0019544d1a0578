"""Whole-selection reads: a query made only of lists, items by id and plain fields is answered by
PostgreSQL as JSON.

A schema extension, so that the resolvers stay the one definition of the API: before graphql-core
executes an operation, this looks at its selection. When every root field is a list of journal data or
one resource by id (`patient(id:)`, `node(id:)`) and everything under it is a plain field (its JSON
shape comes from the kind's declaration), a nested list, a cursor or pageInfo, the store answers each
root field with one statement that builds the JSON (gateway/json_sql.py), filtered per level by the
same query plans and audited row by row, and execution is skipped. An item is decided by its `read`
plan inside that statement; when it yields no row (missing, hidden, or a plan SQL cannot hold) the
resolvers run instead and explain why, with the PDP's exact reason. Anything else (a reference, a
count, a field with its own permission, a directive, a mutation) runs through the resolvers as before.
Bad arguments also take the resolver path, which explains them field by field.
"""

from __future__ import annotations

import contextlib
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
    print_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from gateway.context import Context
from gateway.declare import ResourceKind
from gateway.errors import AksonError
from gateway.json_sql import (
    ITEM_OF,
    LIST_OF,
    PAGE_INFO_FIELDS,
    Edges,
    ItemSelection,
    ListSelection,
    NodeSelection,
    PageInfo,
    Shape,
    Typename,
    Value,
)
from gateway.resources import KINDS
from gateway.store import ListArgs, StalePrincipal, Store, parse_global_id

# The root fields of an operation as whole-selection reads: (response key, what it reads).
Roots = list[tuple[str, ListSelection | ItemSelection]]


class NotWhole(Exception):
    """The selection needs the resolvers."""


@dataclass
class _Planner:
    """Turns an operation's selection into ListSelections, or says it cannot (NotWhole)."""

    context: ExecutionContext
    fragments: dict[str, FragmentDefinitionNode]
    variables: VariableValues

    def fields(
        self, selection_set: SelectionSetNode | None, type_name: str, *, as_node: bool = False
    ) -> list[FieldNode]:
        """The fields of a selection set, fragments spread, in order; directives and repeated keys refuse.
        `as_node`: the set is selected on the Node interface, so fragments on Node apply and fragments on
        other types are left out."""
        if selection_set is None:
            raise NotWhole
        found: list[FieldNode] = []
        for node in selection_set.selections:
            if node.directives:
                raise NotWhole
            if isinstance(node, FieldNode):
                found.append(node)
                continue
            if isinstance(node, InlineFragmentNode):
                condition, inner = node.type_condition, node.selection_set
                on = type_name if condition is None else condition.name.value
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.fragments.get(node.name.value)
                if fragment is None or fragment.directives:
                    raise NotWhole
                on, inner = fragment.type_condition.name.value, fragment.selection_set
            else:
                raise NotWhole
            if on == type_name or (as_node and on == "Node"):
                found.extend(self.fields(inner, type_name, as_node=as_node))
            elif not as_node:
                raise NotWhole
        by_key: dict[str, FieldNode] = {}
        for f in found:
            key = (f.alias or f.name).value
            if key not in by_key:
                by_key[key] = f
            elif print_ast(by_key[key]) != print_ast(f):
                raise NotWhole  # fields that merge into one another: the resolvers do that
        return list(by_key.values())

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

    def item_selection(self, field: StrawberryField, node: FieldNode) -> ItemSelection:
        """A root field that reads one resource by global id (`field` has ITEM_OF), with what is asked of it."""
        expected: ResourceKind | None = field.metadata[ITEM_OF]
        graphql_type = self.context.schema._schema.query_type
        assert graphql_type is not None
        raw = get_argument_values(graphql_type.fields[node.name.value], node, self.variables)
        kind, rid = parse_global_id(str(raw["id"]), expected)
        return ItemSelection(kind, rid, self.node(kind.type_name, node, as_node=expected is None))

    def root(self, node: FieldNode) -> ListSelection | ItemSelection:
        field = self.strawberry_field("Query", node.name.value)
        if ITEM_OF in field.metadata:
            return self.item_selection(field, node)
        return self.list_selection("Query", node, top=True)

    def node(self, item_type: str, node: FieldNode, *, as_node: bool = False) -> NodeSelection:
        kind = KINDS.get(item_type)
        if kind is None or not kind.node:
            raise NotWhole
        shapes = kind.shapes
        parts: list[tuple[str, Shape | Typename | ListSelection]] = []
        for sub in self.fields(node.selection_set, item_type, as_node=as_node):
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


def plan(context: ExecutionContext) -> Roots | None:
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
        roots = planner.fields(operation.selection_set, "Query")
        return [((node.alias or node.name).value, planner.root(node)) for node in roots]
    except (NotWhole, GraphQLError, AksonError, TypeError, ValueError):
        return None


class WholeSelectionReads(SchemaExtension):
    """Answers whole-selection queries from PostgreSQL's JSON and skips graphql-core's execution. What it
    does not answer runs through the resolvers with a principal proven current first."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        request: Context | None = context.context
        selections = plan(context) if request is not None else None
        answers = None
        if request is not None and selections:
            try:
                answers = await answer(request.store, selections)
            except StalePrincipal:
                await request.look_up_principal_again()
                with contextlib.suppress(StalePrincipal):
                    answers = await answer(request.store, selections)
        if answers is not None:
            body = ",".join(f"{orjson.dumps(key).decode()}:{text}" for key, text in answers)
            context.result = ExecutionResult(data=orjson.Fragment("{" + body + "}"), errors=None)  # type: ignore[arg-type]
        elif request is not None:
            await request.ensure_current_principal()
        yield


async def answer(store: Store, selections: Roots) -> list[tuple[str, str]] | None:
    """Each root field's JSON text, or None when one of them needs the resolvers: then nothing it read
    is audited (the resolvers read and audit it again), items first so that this is rare. StalePrincipal
    when the principal kept from an earlier request is out of date (nothing audited either)."""
    mark = store.audit_mark()
    texts: dict[str, str] = {}
    try:
        for key, selection in sorted(selections, key=lambda pair: not isinstance(pair[1], ItemSelection)):
            if isinstance(selection, ItemSelection):
                text = await store.item_json(selection)
                if text is None:
                    store.audit_rewind(mark)
                    return None
                texts[key] = text
            else:
                texts[key] = await store.list_json(selection)
    except AksonError:
        store.audit_rewind(mark)
        return None
    except StalePrincipal:
        store.audit_rewind(mark)
        raise
    return [(key, texts[key]) for key, _ in selections]
