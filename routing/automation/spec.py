"""A rule as admins write it and `automation_rules` keeps it, checked as a whole (conditions
that fit its trigger), and a stored rule read back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from routing.automation.actions import Action
from routing.automation.base import Part, Trigger
from routing.automation.conditions import ONLY_FOR, Condition
from storage.models import AutomationRule


class RuleSpec(Part):
    """A rule as admins write it. Cross-field checks here; whether the teams, agents, labels
    and canned responses it names exist is `automation_store`'s to check."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    trigger: Trigger
    conditions: Annotated[tuple[Condition, ...], Field(max_length=20)] = ()
    actions: Annotated[tuple[Action, ...], Field(min_length=1, max_length=20)]
    enabled: bool = True

    @model_validator(mode="after")
    def _fits_trigger(self) -> RuleSpec:
        for index, condition in enumerate(self.conditions):
            allowed = ONLY_FOR.get(condition.type)
            if allowed is not None and self.trigger not in allowed:
                raise ValueError(
                    f"conditions.{index}: {condition.type} applies only to "
                    f"{' or '.join(allowed)} rules"
                )
        return self

    def stored(self) -> dict[str, Any]:
        """The JSON `automation_rules` keeps (conditions and actions as lists of dicts)."""
        return self.model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class LoadedRule:
    id: int
    spec: RuleSpec | None
    problem: str = ""
    """Why the stored rule could not be read (then `spec` is None and it only fails)."""


def loaded(row: AutomationRule) -> LoadedRule:
    """A stored rule, read back; one that no longer validates is kept, to fail when it fires."""
    try:
        spec = RuleSpec.model_validate(
            {
                "name": row.name,
                "trigger": row.trigger,
                "conditions": row.conditions,
                "actions": row.actions,
                "enabled": row.enabled,
            }
        )
    except ValueError as exc:
        return LoadedRule(row.id, None, f"stored rule is not valid: {exc}")
    return LoadedRule(row.id, spec)
