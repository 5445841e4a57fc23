"""What operators and tools read: health, metrics, the OpenAPI description, dead letters."""

from __future__ import annotations

from typing import Any

from channels.base import Inbound, Sender
from inbox.app import API_PREFIX, API_ROUTES
from routing.router import INBOUND_TOPIC
from storage.config import StorageConfig
from tests.fixtures.stack import Stack, eventually, running_stack


async def test_health_and_metrics(stack: Stack) -> None:
    async with stack.http.get(stack.base + "/healthz") as response:
        assert response.status == 200
        assert (await response.json())["database"] == "ok"
    await stack.post_form("contact", {"email": "a@example.com", "message": "سلام"})
    await stack.post_form("nonexistent", {"email": "a@example.com", "message": "سلام"})

    async def routed() -> str | None:
        async with stack.http.get(stack.base + "/metrics") as response:
            text = await response.text()
        done = 'pishkhan_routed_messages_total{outcome="ok"} 1.0' in text
        return text if done and 'pishkhan_queue_depth{topic="inbound"} 0.0' in text else None

    text = await eventually(routed)
    assert 'pishkhan_inbound_messages_total{channel="contact"} 1.0' in text
    assert 'pishkhan_rejected_requests_total{channel="unknown",status="404"} 1.0' in text


async def test_openapi_describes_every_route_with_its_role(stack: Stack) -> None:
    async with stack.http.get(stack.base + "/api/v1/openapi.json") as response:
        spec: dict[str, Any] = await response.json()
    assert spec["openapi"].startswith("3.")
    for route in API_ROUTES:
        operation = spec["paths"][API_PREFIX + route.path][route.method.lower()]
        assert operation["x-role"] == route.role
    body = spec["paths"]["/api/v1/conversations/{id}/messages"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/ReplyBody")


async def test_a_message_that_keeps_failing_is_dead_lettered_for_an_admin(
    storage_config: StorageConfig,
) -> None:
    async with running_stack(storage_config, {"queue": {"max_attempts": 2}}) as stack:
        await _dead_letter_scenario(stack)


async def _dead_letter_scenario(stack: Stack) -> None:
    admin = await stack.add_agent("boss@example.com", role="admin")
    assert stack.runtime.services is not None
    queue = stack.runtime.services.queue
    await queue.publish(INBOUND_TOPIC, "contact:broken", b"{not an envelope")
    good = Inbound(
        channel="contact",
        external_id="ok-1",
        sender=Sender(external_id="ok@example.com", email="ok@example.com"),
        text="پیام سالم",
    )
    await queue.publish(INBOUND_TOPIC, good.order_key, good.to_json())

    async def dead() -> list[dict[str, Any]] | None:
        _, body = await admin.get("/api/v1/queues/inbound/dead-letters")
        return body["dead_letters"] or None

    async def good_stored() -> bool:
        _, listing = await admin.get("/api/v1/conversations")
        return any(c["preview"] == "پیام سالم" for c in listing["conversations"])

    await eventually(good_stored)  # the broken one does not hold the others up
    [letter] = await eventually(dead, timeout=30)
    assert letter["key"] == "contact:broken"
    assert "JSONDecodeError" in letter["error"]
    agent = await stack.add_agent("ali@example.com")
    status, _ = await agent.get("/api/v1/queues/inbound/dead-letters")
    assert status == 403
