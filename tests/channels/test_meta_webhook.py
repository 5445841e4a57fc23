"""The Meta webhook: the subscription handshake, the signature over the raw bytes, and every
kind of bad delivery answered with a clear status and nothing queued half-way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from channels.base import Rejected
from channels.meta_webhook import handshake, sign, verify_signature
from tests.fixtures.graph_api import (
    APP_SECRET,
    VERIFY_TOKEN,
    FakeGraph,
    Recorder,
    encode,
    fake_graph,
    load_payload,
    running,
    serving,
    signature,
    signed,
    wa_text,
    whatsapp,
)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with fake_graph() as server:
        yield server


# the pure parts ----------------------------------------------------------------------------


def test_the_signature_is_checked_over_the_raw_bytes() -> None:
    delivery = load_payload("whatsapp_text.json")
    body = encode(delivery)  # Meta escapes non-ASCII: \u0633\u0644\u0627\u0645
    assert b"\\u0633" in body
    header = signature(body)
    assert verify_signature(body, header, APP_SECRET)
    assert verify_signature(body, header.upper().replace("SHA256=", "sha256="), APP_SECRET)
    # The same JSON serialized again (Persian unescaped) is other bytes: refused.
    again = json.dumps(delivery, ensure_ascii=False).encode()
    assert not verify_signature(again, header, APP_SECRET)
    assert not verify_signature(body, header, "another-secret")
    assert not verify_signature(body, None, APP_SECRET)
    assert not verify_signature(body, "", APP_SECRET)
    assert not verify_signature(body, "sha1=" + header[7:], APP_SECRET)
    assert not verify_signature(body, "sha256=ابجد", APP_SECRET)
    assert not verify_signature(body, header, "")
    assert sign(body, APP_SECRET) == header


def test_the_handshake_echoes_the_challenge_only_for_the_right_token() -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    assert handshake(query, VERIFY_TOKEN) == "1158201444"
    for bad in (
        {**query, "hub.verify_token": "wrong"},
        {**query, "hub.mode": "unsubscribe"},
        {k: v for k, v in query.items() if k != "hub.verify_token"},
        {**query, "hub.challenge": ""},
        {**query, "hub.challenge": "x" * 1000},
        {**query, "hub.challenge": "<script>\n"},
    ):
        with pytest.raises(Rejected) as caught:
            handshake(bad, VERIFY_TOKEN)
        assert caught.value.status == 403
    with pytest.raises(Rejected):
        handshake(query, "")  # no token configured: nobody subscribes


# through HTTP -------------------------------------------------------------------------------


async def test_handshake_over_http(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, _), serving(channel) as url:
        assert url.endswith("/channels/meta/wa/webhook")
        async with aiohttp.ClientSession() as http:
            params = {
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "8765",
            }
            async with http.get(url, params=params) as response:
                assert response.status == 200
                assert response.content_type == "text/plain"
                assert await response.text() == "8765"
            async with http.get(url, params={**params, "hub.verify_token": "nope"}) as response:
                assert response.status == 403
            async with http.get(url) as response:
                assert response.status == 403


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_unsigned_and_wrongly_signed_deliveries_are_refused_and_nothing_queued(
    fake: FakeGraph,
) -> None:
    async with running("whatsapp", fake) as (channel, recorder, _), serving(channel) as url:
        body, headers = signed(whatsapp(wa_text("989121234567", "wamid.A", "سلام")))
        status, answer = await _post(url, body, {"Content-Type": "application/json"})
        assert status == 401 and "X-Hub-Signature-256" in str(answer["error"])
        wrong = {**headers, "X-Hub-Signature-256": signature(body, "not-the-app-secret")}
        assert (await _post(url, body, wrong))[0] == 401
        tampered = body.replace(b"wamid.A", b"wamid.B")
        assert (await _post(url, tampered, headers))[0] == 401
        assert recorder.emitted == []
        status, answer = await _post(url, body, headers)
        assert (status, answer) == (200, {"queued": 1})
        assert [i.external_id for i in recorder.emitted] == ["wamid.A"]


async def test_bad_bodies_get_a_clear_4xx(fake: FakeGraph) -> None:
    async with (
        running("whatsapp", fake, max_body_bytes=4096) as (channel, recorder, _),
        serving(channel) as url,
    ):

        def sign_raw(body: bytes) -> dict[str, str]:
            return {"X-Hub-Signature-256": signature(body)}

        for body, expected in (
            (b"{not json", 400),
            (b"\xff\xfe{}", 400),
            (b"[1, 2]", 400),
            (b'"entry"', 400),
            (b'{"object": "whatsapp_business_account", "entry": {"id": 1}}', 400),
            (b"[" * 100_000, 413),
            (b'{"object":"whatsapp_business_account","entry":[]}' + b" " * 5000, 413),
        ):
            status, answer = await _post(url, body, sign_raw(body))
            assert status == expected, (body[:40], answer)
            assert answer["error"]
        assert recorder.emitted == []


async def test_unknown_objects_and_malformed_entries_are_skipped_not_failed(
    fake: FakeGraph,
) -> None:
    async with running("whatsapp", fake) as (channel, recorder, _), serving(channel) as url:
        # Another object this app subscribes to: signed, so genuine; skipped with a 200.
        body, headers = signed({"object": "page", "entry": [{"id": "1", "messaging": []}]})
        assert await _post(url, body, headers) == (200, {"queued": 0})

        good = whatsapp(wa_text("989121234567", "wamid.GOOD", "سلام"))
        entries = [
            "not an entry",
            {"id": "1"},  # no changes
            {"id": "1", "changes": [{"field": "messages", "value": {"metadata": "x"}}]},
            {"id": "1", "changes": [{"field": "account_update", "value": {}}]},
            *good["entry"],
        ]
        broken_messages = whatsapp(
            {"id": "wamid.NOFROM", "type": "text", "text": {"body": "?"}},
            {"from": "989121234567", "id": "wamid.NOBODY", "type": "text", "text": {}},
            {"from": "989121234567", "id": "wamid.LOC", "type": "location", "location": {}},
            wa_text("989121234567", "wamid.GOOD2", "دومی"),
        )
        delivery = {
            "object": "whatsapp_business_account",
            "entry": entries + broken_messages["entry"],
        }
        body, headers = signed(delivery)
        status, answer = await _post(url, body, headers)
        assert (status, answer) == (200, {"queued": 2})
        assert [i.external_id for i in recorder.emitted] == ["wamid.GOOD", "wamid.GOOD2"]
        assert channel.status()["skipped"] >= 3
        assert channel.status()["last_webhook_at"] is not None


async def test_a_delivery_for_another_number_is_not_ours(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, recorder, _), serving(channel) as url:
        body, headers = signed(
            whatsapp(wa_text("989121234567", "wamid.X", "hi"), phone_number_id="999")
        )
        assert await _post(url, body, headers) == (200, {"queued": 0})
        assert recorder.emitted == []


async def test_a_delivery_is_answered_only_once_queued(fake: FakeGraph) -> None:
    recorder = Recorder(failing=True)
    async with (
        running("whatsapp", fake, recorder=recorder) as (channel, _, _),
        serving(channel) as url,
    ):
        body, headers = signed(
            whatsapp(
                wa_text("989121234567", "wamid.1", "یک"), wa_text("989121234567", "wamid.2", "دو")
            )
        )
        status, _ = await _post(url, body, headers)
        assert status == 503  # Meta delivers it again later
        recorder.failing = False
        assert await _post(url, body, headers) == (200, {"queued": 2})
        # Meta redelivers anyway (it missed our answer): nothing queued twice here, and the
        # router stores a message id once whatever reaches it.
        assert await _post(url, body, headers) == (200, {"queued": 0})
        assert [i.external_id for i in recorder.emitted] == ["wamid.1", "wamid.2"]


async def test_a_stopped_channel_answers_503_to_signed_posts(fake: FakeGraph) -> None:
    async with running("whatsapp", fake) as (channel, _, _), serving(channel) as url:
        await channel.stop()
        body, headers = signed(whatsapp(wa_text("989121234567", "wamid.1", "یک")))
        assert (await _post(url, body, headers))[0] == 503
        unsigned = await _post(url, body, {})
        assert unsigned[0] == 401
