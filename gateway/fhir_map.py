"""The vocabulary for saying, beside a kind's declaration, where its fields stand in a FHIR R4 resource.

A kind's `fhir` (a `FhirMap`, in gateway/resources.py) names its R4 resource and, for each declared field,
the element it fills and how: `As` the field's own FHIR type (a Span is a Period, a Coded a
CodeableConcept, a Ref a Reference, a Named a HumanName, ...), or one of the wrappers below for the
places FHIR wants a code inside a CodeableConcept, an Identifier, a ContactPoint. The JSON of every
read, search and export (gateway/fhir_resources.py) and the fields a FHIR write sets come from these maps,
so a field is mapped once, for both directions.

Paths are element names joined by dots. `name[]` is a list whose first element every path through it
shares (several fields of one `content[]` element); `name[+]` appends an element of its own (a second
identifier). Hand-written: FHIR mapping libraries map from their own models, not from declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Norwegian identifier systems (OIDs of the Norwegian Directorate of eHealth's identifier register).
FODSELSNUMMER = "urn:oid:2.16.578.1.12.4.1.4.1"
D_NUMBER = "urn:oid:2.16.578.1.12.4.1.4.2"
HPR_NUMBER = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGANIZATION_NUMBER = "urn:oid:2.16.578.1.12.4.1.4.101"
UCUM = "http://unitsofmeasure.org"
AKSON_CODES = "urn:akson:codes"
AKSON_EXTENSIONS = "https://akson.no/fhir/StructureDefinition"


@dataclass(frozen=True)
class Element:
    """Where one field goes: the path of its element in the resource."""

    path: str


@dataclass(frozen=True)
class As(Element):
    """The field as its own FHIR type (for a text or code column: the value itself, through `codes` where
    FHIR's codes differ from ours)."""

    codes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Within(Element):
    """The field as its own FHIR type under `key` of a new element at `path`, beside constant `extra`
    elements (a participant's actor with its status)."""

    key: str
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Extension(Element):
    """The field in an extension of ours (`value[x]` of its FHIR type), where R4 has no element for it."""

    path: str = "extension[+]"
    name: str = ""


@dataclass(frozen=True)
class Described(Element):
    """A free-text column as a CodeableConcept with only its text."""


@dataclass(frozen=True)
class Concept(Element):
    """A code column as a CodeableConcept of `system`, through `codes` where FHIR's codes differ from ours."""

    system: str
    codes: dict[str, str] = field(default_factory=dict)
    displays: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CodingOf(Concept):
    """A code column as a bare Coding of `system`."""


@dataclass(frozen=True)
class Identifier(Element):
    """A text column as an Identifier of `system`."""

    system: str


@dataclass(frozen=True)
class PersonIdentifier(Element):
    """A Norwegian person number as an Identifier: a fødselsnummer, or a D-number (first digit 4 to 7)."""


@dataclass(frozen=True)
class Contact(Element):
    """A text column as a ContactPoint (`system` phone or email)."""

    system: str


@dataclass(frozen=True)
class AddressText(Element):
    """A one-line postal address as an Address with its text."""


@dataclass(frozen=True)
class Attachment(Element):
    """A text column as an Attachment of plain text (base64 data). A field with a permission of its own is
    left out, and the resource marked redacted, when the caller lacks it."""


@dataclass(frozen=True)
class PeriodStatus(Element):
    """A status FHIR requires, derived from a Span field: before, during or after its period."""

    before: str
    during: str
    after: str


@dataclass(frozen=True)
class Results(Element):
    """A list field (Many) as References to the children the caller may read."""


@dataclass(frozen=True)
class FhirMap:
    """A kind as a FHIR R4 resource: its type, each field's element (field name -> Element; a field may
    fill several), elements every resource of it carries (`fixed`), and what marks one entered in
    error (`entered_in_error`: path and value). `profile` names the profile its resources claim."""

    resource: str
    elements: tuple[tuple[str, Element], ...]
    fixed: tuple[tuple[str, Any], ...] = ()
    entered_in_error: tuple[str, Any] | None = None
    why: str = ""


def put(resource: dict[str, Any], path: str, item: Any) -> None:
    """Set the element at `path` (see the module docstring for `[]` and `[+]`)."""
    node = resource
    parts = path.split(".")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part.endswith("[+]") or part.endswith("[]"):
            fresh = part.endswith("[+]")
            items = node.setdefault(part.removesuffix("[+]").removesuffix("[]"), [])
            if last:
                items.append(item)
                return
            if fresh or not items:
                items.append({})
            node = items[-1] if fresh else items[0]
        elif last:
            existing = node.get(part)
            node[part] = {**existing, **item} if isinstance(existing, dict) and isinstance(item, dict) else item
        else:
            node = node.setdefault(part, {})


def get(resource: dict[str, Any], path: str) -> Any:
    """The element at `path` (the first element of each list on the way), or None."""
    node: Any = resource
    for part in path.split("."):
        name = part.removesuffix("[+]").removesuffix("[]")
        if not isinstance(node, dict) or name not in node:
            return None
        node = node[name]
        if part != name:
            if not isinstance(node, list) or not node:
                return None
            node = node[0]
    return node
