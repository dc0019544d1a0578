"""The static cost of an operation: the most fields its response can hold, known before it runs.

Every selected field costs 1, and a list multiplies the cost of what it selects by how many items it can
return: `first` when the field takes one (the variable's or argument's value, else its default), one for
the `edges` and `nodes` of a connection (the connection's `first` already counted them), and the page
size limit for any other list. `patients(first: 20) { edges { node { name observations(first: 10) { edges
{ node { code } } } } } }` thus costs 1 + 20 x (1 + 1 + 1 + 10 x (1 + 1 + 1)) = 681.

Fragments are costed once per fragment and type, so a document cannot make counting expensive. No library
computes this from a graphql-core schema the way our connections need, hence this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from graphql.pyutils import Undefined

COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"
_CONNECTION_LISTS = frozenset({"edges", "nodes"})


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    list_limit: int,
) -> int:
    """The cost of the operation the request runs (by `operation_name`, or the only one)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    if not chosen:
        return 0
    operation = chosen[0]
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    values = dict(variables or {})
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in values and isinstance(definition.default_value, IntValueNode):
            values[name] = int(definition.default_value.value)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return _Costing(schema, fragments, values, list_limit).selection(root, operation.selection_set)


class _Costing:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        list_limit: int,
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._variables = variables
        self._list_limit = list_limit
        self._fragment_costs: dict[tuple[str, str], int] = {}
        self._visiting: set[str] = set()

    def selection(self, parent: Any, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None or not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += self._field(parent, node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                inner = self._schema.get_type(condition.name.value) if condition else parent
                total += self.selection(inner, node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                total += self._spread(node.name.value)
        return total

    def _spread(self, name: str) -> int:
        fragment = self._fragments.get(name)
        if fragment is None or name in self._visiting:
            return 0
        key = (name, fragment.type_condition.name.value)
        if key not in self._fragment_costs:
            self._visiting.add(name)
            inner = self._schema.get_type(fragment.type_condition.name.value)
            self._fragment_costs[key] = self.selection(inner, fragment.selection_set)
            self._visiting.discard(name)
        return self._fragment_costs[key]

    def _field(self, parent: GraphQLObjectType | GraphQLInterfaceType, node: FieldNode) -> int:
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 1
        children = self.selection(get_named_type(definition.type), node.selection_set)
        return 1 + self._multiplier(parent, node, definition) * children

    def _multiplier(self, parent: Any, node: FieldNode, definition: GraphQLField) -> int:
        if "first" in definition.args:
            return self._first(node, definition)
        if isinstance(get_nullable_type(definition.type), GraphQLList):
            if node.name.value in _CONNECTION_LISTS and parent.name.endswith("Connection"):
                return 1
            return self._list_limit
        return 1

    def _first(self, node: FieldNode, definition: GraphQLField) -> int:
        given = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if isinstance(given, IntValueNode):
            return _page(int(given.value), self._list_limit)
        if isinstance(given, VariableNode):
            return _page(self._variables.get(given.name.value), self._list_limit)
        default = definition.args["first"].default_value
        return _page(None if default is Undefined else default, self._list_limit)


def _page(value: object, list_limit: int) -> int:
    """A page size as the cost counts it: what was asked for, within 0 and the limit (a value the
    resolver will refuse counts as the limit; the refusal comes later, with its own error)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= list_limit:
        return value
    return list_limit
