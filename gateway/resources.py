"""Resource kinds as policy and SQL both see them: table, alias and each policy attribute's SQL.

One declaration serves both directions: the store selects these expressions to fill resource
attributes for CheckResources, and the plan translator filters on the same expressions for lists.
A care relation counts while its period includes now.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.plan_sql import Attribute, Column, SetOf

ACTIVE_CARE_RELATION = "cr.period_start <= now() AND (cr.period_end IS NULL OR cr.period_end > now())"


@dataclass(frozen=True)
class ResourceKind:
    """A kind of journal resource: its Cerbos name, its table and its policy attributes."""

    name: str
    table: str
    alias: str
    attributes: dict[str, Attribute]

    def attribute_select(self) -> str:
        """SELECT-list entries that load every attribute, named `attr_<name>`."""
        parts = []
        for name, attribute in self.attributes.items():
            if isinstance(attribute, SetOf):
                parts.append(f"ARRAY({attribute.sql})::text[] AS attr_{name}")
            else:
                parts.append(f"{attribute.sql}::text AS attr_{name}")
        return ", ".join(parts)


PATIENT = ResourceKind(
    name="patient",
    table="patient",
    alias="p",
    attributes={
        "patient_id": Column("p.id", "uuid"),
        "owning_unit_id": Column("p.owning_unit_id", "uuid"),
        "category": Column("p.category", "text"),
        "care_unit_ids": SetOf(
            f"SELECT cr.organization_id FROM care_relation cr WHERE cr.patient_id = p.id AND {ACTIVE_CARE_RELATION}",
            "uuid",
        ),
        "care_practitioner_ids": SetOf(
            "SELECT cr.practitioner_id FROM care_relation cr WHERE cr.patient_id = p.id "
            f"AND cr.practitioner_id IS NOT NULL AND {ACTIVE_CARE_RELATION}",
            "uuid",
        ),
    },
)
