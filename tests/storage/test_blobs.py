"""The database blob store keeps attachments byte for byte, on both backends."""

from __future__ import annotations

from channels.base import BlobStore
from storage.blobs import SqlBlobStore, attachment_id
from storage.db import SessionFactory


async def test_put_then_get_round_trips_the_bytes(sessions: SessionFactory) -> None:
    store = SqlBlobStore(sessions)
    assert isinstance(store, BlobStore)
    data = bytes(range(256)) * 10
    url = await store.put(data, "رسید.pdf", "application/pdf", owner="support/a@b")
    assert url.startswith("/api/v1/attachments/")
    blob = await store.get(url)
    assert blob is not None
    assert (blob.filename, blob.content_type, blob.data) == ("رسید.pdf", "application/pdf", data)


async def test_unknown_or_foreign_urls_find_nothing(sessions: SessionFactory) -> None:
    store = SqlBlobStore(sessions)
    assert await store.get("/api/v1/attachments/" + "0" * 32) is None
    assert await store.get("https://example.com/file.pdf") is None
    assert attachment_id("/api/v1/attachments/../../etc") is None


async def test_empty_names_and_types_get_defaults(sessions: SessionFactory) -> None:
    store = SqlBlobStore(sessions)
    blob = await store.get(await store.put(b"", "", "", owner="support/x"))
    assert blob is not None
    assert (blob.filename, blob.content_type, blob.data) == (
        "attachment",
        "application/octet-stream",
        b"",
    )
