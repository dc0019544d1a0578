"""SMART on FHIR v2 scopes: parsing and what they grant.

Hand-written because no maintained Python library parses SMART v2 scopes; the grammar is small:
`<context>/<type>.<permissions>[?<param>=<value>&...]` with context `patient`, `user` or `system`, a
resource type or `*`, and permissions a non-empty subsequence of `cruds` in that order. Other scopes
(`openid`, `fhirUser`, `launch/patient`, `offline_access`, issuer-specific ones) pass through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

_RESOURCE_SCOPE = re.compile(r"(?P<context>[a-z]+)/(?P<type>[A-Za-z*]+)\.(?P<perms>[a-z*]+)(?:\?(?P<query>.*))?")
_PERMISSIONS = "cruds"
_CONTEXTS = {"patient", "user", "system"}
_PASS_THROUGH = re.compile(r"(openid|profile|fhirUser|offline_access|online_access|launch(/[a-z]+)?|[a-z]+://\S+)")


class InvalidScope(ValueError):
    """A scope string that is not valid SMART v2; the message says what is wrong with it."""


@dataclass(frozen=True)
class ResourceScope:
    """One resource scope: who it is about, which type, which permissions, which narrowing params."""

    context: str
    resource_type: str
    permissions: frozenset[str]
    params: tuple[tuple[str, str], ...] = ()

    def grants(self, permission: str, resource_type: str) -> bool:
        """Whether this scope grants `permission` (a letter of cruds) on `resource_type`."""
        return permission in self.permissions and self.resource_type in {"*", resource_type}


def parse_scope(scope: str, known_types: set[str]) -> ResourceScope | None:
    """A resource scope, None for a pass-through scope, or InvalidScope with the reason."""
    if _PASS_THROUGH.fullmatch(scope):
        return None
    match = _RESOURCE_SCOPE.fullmatch(scope)
    if match is None:
        raise InvalidScope(f"{scope!r} is not a SMART v2 scope (expected e.g. patient/Observation.rs)")
    context, resource_type, perms = match.group("context"), match.group("type"), match.group("perms")
    if context not in _CONTEXTS:
        raise InvalidScope(f"{scope!r}: the context must be patient, user or system, not {context!r}")
    if resource_type != "*" and resource_type not in known_types:
        raise InvalidScope(f"{scope!r}: {resource_type!r} is not a resource type of this API")
    if perms == "*" or perms in {"read", "write"}:
        raise InvalidScope(f"{scope!r}: SMART v1 permissions are not accepted; use letters of cruds, e.g. .rs")
    if not _is_ordered_subsequence(perms):
        raise InvalidScope(f"{scope!r}: permissions must be letters of c, r, u, d, s, once each and in that order")
    params: list[tuple[str, str]] = []
    if match.group("query") is not None:
        try:
            params = parse_qsl(match.group("query"), keep_blank_values=False, strict_parsing=True)
        except ValueError as exc:
            raise InvalidScope(f"{scope!r}: the parameters after ? are malformed") from exc
        for name, _ in params:
            if name != "category":
                raise InvalidScope(f"{scope!r}: only the `category` parameter is supported, not {name!r}")
    return ResourceScope(context, resource_type, frozenset(perms), tuple(params))


def _is_ordered_subsequence(perms: str) -> bool:
    position = -1
    for letter in perms:
        index = _PERMISSIONS.find(letter)
        if index <= position:
            return False
        position = index
    return bool(perms)


def parse_scopes(text: str | list[str], known_types: set[str]) -> list[ResourceScope]:
    """All resource scopes of a space-separated scope string (or list); the first invalid one raises."""
    items = text.split() if isinstance(text, str) else text
    parsed = [parse_scope(item, known_types) for item in items]
    return [scope for scope in parsed if scope is not None]


def within(requested: str, registered: list[str], known_types: set[str]) -> bool:
    """Whether every requested scope is one of the registered ones or narrower: a resource scope in the same
    context, of a type a registered one covers (itself or `*`), with some of its permissions and no wider
    `?category=`; any other scope only as registered. An app may ask for less than it registered."""
    try:
        ceiling = [(scope, parse_scope(scope, known_types)) for scope in registered]
        for scope in requested.split():
            asked = parse_scope(scope, known_types)
            if asked is None:
                if scope not in registered:
                    return False
            elif not any(r is not None and _covers(r, asked) for _, r in ceiling):
                return False
    except InvalidScope:
        return False
    return True


def _covers(wide: ResourceScope, narrow: ResourceScope) -> bool:
    return (
        wide.context == narrow.context
        and wide.resource_type in {"*", narrow.resource_type}
        and narrow.permissions <= wide.permissions
        and (not wide.params or (bool(narrow.params) and set(narrow.params) <= set(wide.params)))
    )


@dataclass(frozen=True)
class ScopeGrants:
    """What an app's scopes allow, per context, as policy attributes: resource kinds readable
    (`r`), searchable (`s`), creatable (`c`) and updatable (`u`), and category limits from `?category=`.
    `patient/` scopes reach only the launch patient, so they are kept apart."""

    read: tuple[str, ...]
    search: tuple[str, ...]
    patient_read: tuple[str, ...]
    patient_search: tuple[str, ...]
    categories: dict[str, list[str]]
    create: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    patient_create: tuple[str, ...] = ()
    patient_update: tuple[str, ...] = ()


def grants(scopes: list[ResourceScope], kind_of_type: dict[str, str]) -> ScopeGrants:
    """Translate resource scopes into Cerbos kind names; `patient/` scopes only reach the launch patient."""
    read: set[str] = set()
    search: set[str] = set()
    patient_read: set[str] = set()
    patient_search: set[str] = set()
    categories: dict[str, set[str]] = {}
    unrestricted: set[str] = set()
    create: set[str] = set()
    update: set[str] = set()
    patient_create: set[str] = set()
    patient_update: set[str] = set()
    for scope in scopes:
        kinds = set(kind_of_type.values()) if scope.resource_type == "*" else {kind_of_type[scope.resource_type]}
        target_read, target_search = (patient_read, patient_search) if scope.context == "patient" else (read, search)
        if "r" in scope.permissions:
            target_read |= kinds
        if "s" in scope.permissions:
            target_search |= kinds
        if "c" in scope.permissions:
            (patient_create if scope.context == "patient" else create).update(kinds)
        if "u" in scope.permissions:
            (patient_update if scope.context == "patient" else update).update(kinds)
        if not scope.params:
            unrestricted |= kinds
        for _, value in scope.params:
            for kind in kinds:
                categories.setdefault(kind, set()).add(value)
    return ScopeGrants(
        tuple(sorted(read)),
        tuple(sorted(search)),
        tuple(sorted(patient_read)),
        tuple(sorted(patient_search)),
        {kind: sorted(values) for kind, values in categories.items() if kind not in unrestricted},
        tuple(sorted(create)),
        tuple(sorted(update)),
        tuple(sorted(patient_create)),
        tuple(sorted(patient_update)),
    )
