"""Which rules can give a reason code, read from the policies themselves: a denial report's reason is traced
back to the rules whose output names it (`resource.rule`, with the scope of a local rule), so a policy admin
reading "vendor X is refused with ROLE_CATEGORY" sees which rule to read. A rule whose output is a shared
variable (`V.denial_reason`) names every code that variable's expression can give."""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from pathlib import Path

import yaml

_CODE = re.compile(r'"([A-Z][A-Z0-9_]{1,63})"')
_VARIABLE = re.compile(r"\bV\.([a-z_][a-z0-9_]*)")


def _variables(policy_dir: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((policy_dir / "export_variables").glob("*.yaml")):
        document = (yaml.safe_load(path.read_text()) or {}).get("exportVariables") or {}
        found.update({name: str(expr) for name, expr in (document.get("definitions") or {}).items()})
    return found


def _codes(expression: str, variables: dict[str, str], seen: frozenset[str] = frozenset()) -> set[str]:
    codes = set(_CODE.findall(expression))
    for name in _VARIABLE.findall(expression):
        if name in variables and name not in seen:
            codes |= _codes(variables[name], variables, seen | {name})
    return codes


@functools.lru_cache(maxsize=4)
def rules_by_reason(policy_dir: Path, policy_version: str) -> dict[str, list[str]]:
    """Every reason code a rule's output can name, with the rules (`resource[/scope]#rule`) that name it: read
    once per version of the policies (the version keys the cache; a reload makes a new one)."""
    variables = _variables(policy_dir)
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted((policy_dir / "resources").rglob("*.yaml")):
        policy = (yaml.safe_load(path.read_text()) or {}).get("resourcePolicy") or {}
        where = policy.get("resource", "") + (f"/{policy['scope']}" if policy.get("scope") else "")
        for rule in policy.get("rules") or []:
            when = (rule.get("output") or {}).get("when") or {}
            for expression in when.values():
                for code in _codes(str(expression), variables):
                    found[code].add(f"{where}#{rule.get('name', '')}")
    return {code: sorted(rules) for code, rules in sorted(found.items())}
