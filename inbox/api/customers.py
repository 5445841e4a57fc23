"""Customers: the 360° profile, editing it, and merging two records of the same person."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.accounts import Principal
from inbox.api.base import (
    ApiError,
    ApiRoute,
    Body,
    Id,
    int_param,
    json_response,
    principal,
    read_json,
)
from inbox.api.conversations import LabelName, label_names, visible
from inbox.services import SERVICES
from routing.csat import customer_csat
from routing.history import customer_profile
from storage.models import Conversation, Customer

AttributeValue = Annotated[str, Field(max_length=2000)] | int | float | bool | None
MAX_ATTRIBUTES = 100


class LabelChange(Body):
    add: list[LabelName] = Field(default_factory=list, max_length=50)
    remove: list[LabelName] = Field(default_factory=list, max_length=50)


class CustomerPatch(Body):
    name: str | None = Field(default=None, max_length=200)
    attributes: dict[Annotated[str, Field(min_length=1, max_length=100)], AttributeValue] | None = (
        Field(default=None, description="Replaces all attributes")
    )
    labels: LabelChange | None = None
    owner_id: Id | None = Field(default=None, description="The responsible agent; null clears it")

    @field_validator("attributes")
    @classmethod
    def _few_attributes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
        return value


class MergeBody(Body):
    other_id: Id


async def can_see_customer(session: AsyncSession, who: Principal, customer_id: int) -> bool:
    """Admins see every customer; an agent, those with a conversation the agent can see."""
    if who.is_admin:
        return await session.get(Customer, customer_id) is not None
    found = await session.scalar(
        visible(select(Conversation.id), who)
        .where(Conversation.customer_id == customer_id)
        .limit(1)
    )
    return found is not None


async def _require_visible(request: web.Request, *customer_ids: int) -> None:
    async with request.app[SERVICES].sessions() as session:
        for customer_id in customer_ids:
            if not await can_see_customer(session, principal(request), customer_id):
                raise ApiError(404, f"not found: customer {customer_id}")


async def _profile(request: web.Request, customer_id: int) -> dict[str, Any]:
    async with request.app[SERVICES].sessions() as session:
        profile = await customer_profile(session, customer_id)
        if profile is not None:
            low = request.app[SERVICES].config.routing.csat.low_score
            profile["csat"] = await customer_csat(session, customer_id, low_score=low)
    if profile is None:
        raise ApiError(404, f"not found: customer {customer_id}")
    return profile


async def get_customer(request: web.Request) -> web.StreamResponse:
    customer_id = int_param(request, "id")
    await _require_visible(request, customer_id)
    return json_response(await _profile(request, customer_id))


async def patch_customer(request: web.Request) -> web.StreamResponse:
    customer_id = int_param(request, "id")
    body = await read_json(request, CustomerPatch)
    if body.name is not None and not body.name.strip():
        raise ApiError(422, "name: must not be blank")
    add = label_names(body.labels.add) if body.labels else []
    remove = label_names(body.labels.remove) if body.labels else []
    await _require_visible(request, customer_id)
    owner: dict[str, Any] = (
        {"owner_id": body.owner_id} if "owner_id" in body.model_fields_set else {}
    )
    await request.app[SERVICES].actions.update_customer(
        customer_id,
        actor_agent_id=principal(request).id,
        name=body.name.strip() if body.name is not None else None,
        attributes=body.attributes,
        add_labels=add,
        remove_labels=remove,
        **owner,
    )
    return json_response(await _profile(request, customer_id))


async def merge_customer(request: web.Request) -> web.StreamResponse:
    customer_id = int_param(request, "id")
    body = await read_json(request, MergeBody)
    if body.other_id == customer_id:
        raise ApiError(422, "other_id: a customer cannot be merged into itself")
    await _require_visible(request, customer_id, body.other_id)
    await request.app[SERVICES].actions.merge_customers(
        customer_id, body.other_id, actor_agent_id=principal(request).id
    )
    return json_response(await _profile(request, customer_id))


ROUTES = [
    ApiRoute("GET", "/customers/{id}", get_customer, "agent", "A customer's 360° view"),
    ApiRoute(
        "PATCH",
        "/customers/{id}",
        patch_customer,
        "agent",
        "Edit name, attributes (replaced), labels or the responsible agent",
        body=CustomerPatch,
    ),
    ApiRoute(
        "POST",
        "/customers/{id}/merge",
        merge_customer,
        "agent",
        "Merge another customer (the same person) into this one",
        body=MergeBody,
    ),
]
