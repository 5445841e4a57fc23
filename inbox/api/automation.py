"""Automation rules admins edit (`routing.automation`), and the audit of who changed what."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StringConstraints, ValidationError

from inbox.api.base import (
    ApiError,
    ApiRoute,
    Body,
    int_param,
    json_response,
    principal,
    query_id,
    read_json,
)
from inbox.services import SERVICES, Services
from routing import automation_store
from routing.automation import (
    TRIGGERS,
    Action,
    ChannelIs,
    Condition,
    RuleSpec,
    Trigger,
)

RuleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Conditions = Annotated[list[Condition], Field(max_length=20)]
Actions = Annotated[list[Action], Field(min_length=1, max_length=20)]


class AutomationRuleBody(Body):
    name: RuleName
    trigger: Trigger
    conditions: Conditions = Field(default_factory=list)
    """All must hold; each a dict named by its `type` (see docs/automation.md)."""
    actions: Actions
    """Run in this order."""
    enabled: bool = True


class AutomationRulePatchBody(Body):
    name: RuleName | None = None
    trigger: Trigger | None = None
    conditions: Conditions | None = None
    actions: Actions | None = None
    enabled: bool | None = None


class AutomationOrderBody(Body):
    trigger: Trigger
    ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(max_length=1000)
    """Every rule of the trigger, in the order they should run."""


def _check_channels(services: Services, conditions: list[Any] | None) -> None:
    known = {c.name for c in services.config.channels}
    for index, condition in enumerate(conditions or []):
        if isinstance(condition, ChannelIs):
            for name in condition.values:
                if name not in known:
                    raise ApiError(422, f"conditions.{index}.values: no channel named {name!r}")


async def list_automation_rules(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    async with services.sessions() as session:
        rules = await session.run_sync(automation_store.list_rules)
    return json_response(
        {
            "rules": rules,
            "triggers": list(TRIGGERS),
            "channels": [c.name for c in services.config.channels],
        }
    )


async def get_automation_rule(request: web.Request) -> web.StreamResponse:
    rule_id = int_param(request, "id")
    async with request.app[SERVICES].sessions() as session:
        rule = await session.run_sync(automation_store.get_rule, rule_id)
    return json_response(rule)


async def add_automation_rule(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, AutomationRuleBody)
    services = request.app[SERVICES]
    _check_channels(services, body.conditions)
    spec = _spec(body.model_dump())
    rule = await services.actions.run(
        automation_store.create_rule, spec, principal(request).id, services.actions.now()
    )
    return json_response(rule, status=201)


def _spec(data: dict[str, Any]) -> RuleSpec:
    """The body as the engine's rule: cross-field problems (a condition for another trigger)
    are a 422 naming the field."""
    try:
        return RuleSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(422, f"{where}: {message}" if where else message) from None


async def update_automation_rule(request: web.Request) -> web.StreamResponse:
    rule_id = int_param(request, "id")
    body = await read_json(request, AutomationRulePatchBody)
    services = request.app[SERVICES]
    _check_channels(services, body.conditions)
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    if nulls := sorted(key for key, value in changes.items() if value is None):
        raise ApiError(422, f"{nulls[0]}: may not be null")
    dumped = body.model_dump(include=set(changes))
    rule = await services.actions.run(
        automation_store.update_rule, rule_id, dumped, principal(request).id, services.actions.now()
    )
    return json_response(rule)


async def delete_automation_rule(request: web.Request) -> web.StreamResponse:
    rule_id = int_param(request, "id")
    services = request.app[SERVICES]
    await services.actions.run(
        automation_store.delete_rule, rule_id, principal(request).id, services.actions.now()
    )
    return json_response({"deleted": rule_id})


async def reorder_automation_rules(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, AutomationOrderBody)
    services = request.app[SERVICES]
    rules = await services.actions.run(
        automation_store.reorder_rules,
        body.trigger,
        body.ids,
        principal(request).id,
        services.actions.now(),
    )
    return json_response({"rules": rules})


async def automation_audit(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("limit", "50")
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 200):
        raise ApiError(400, "limit: a number from 1 to 200")
    before, rule_id = query_id(request, "before"), query_id(request, "rule_id")
    async with request.app[SERVICES].sessions() as session:
        rows = await session.run_sync(
            lambda s: automation_store.list_audit(
                s, limit=int(raw), before_id=before, rule_id=rule_id
            )
        )
    return json_response({"audit": rows})


ROUTES = [
    ApiRoute(
        "GET",
        "/automation/rules",
        list_automation_rules,
        "admin",
        "Automation rules, each trigger's in the order they run",
    ),
    ApiRoute(
        "POST",
        "/automation/rules",
        add_automation_rule,
        "admin",
        "Add an automation rule, run after the other rules of its trigger",
        body=AutomationRuleBody,
    ),
    ApiRoute(
        "POST",
        "/automation/rules/order",
        reorder_automation_rules,
        "admin",
        "Put one trigger's automation rules in this order (each of its rules' ids, once)",
        body=AutomationOrderBody,
    ),
    ApiRoute("GET", "/automation/rules/{id}", get_automation_rule, "admin", "One automation rule"),
    ApiRoute(
        "PATCH",
        "/automation/rules/{id}",
        update_automation_rule,
        "admin",
        "Change an automation rule's name, trigger, conditions, actions or enabled state",
        body=AutomationRulePatchBody,
    ),
    ApiRoute(
        "DELETE",
        "/automation/rules/{id}",
        delete_automation_rule,
        "admin",
        "Delete an automation rule",
    ),
    ApiRoute(
        "GET",
        "/automation/audit",
        automation_audit,
        "admin",
        "Who changed which automation rule, and how (newest first)",
        query=("limit", "before", "rule_id"),
    ),
]
