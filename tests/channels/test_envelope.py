"""The inbound envelope survives the queue unchanged, Persian text and all."""

from __future__ import annotations

from datetime import UTC, datetime

from channels.base import Attachment, Inbound, Sender


def test_an_envelope_round_trips_through_json() -> None:
    envelope = Inbound(
        channel="contact",
        external_id="idem:abc",
        sender=Sender(
            external_id="reza@example.com",
            name="رضا",
            email="reza@example.com",
            phone="+989121234567",
        ),
        text="باشگاه مشتریان و برنامه‌های وفاداری",
        subject="پرسش",
        thread_id="t-1",
        html="<p>سلام</p>",
        attachments=(Attachment("فاکتور.pdf", "application/pdf", 1234, "https://x/f.pdf"),),
        metadata={"page": "/pricing"},
        received_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )
    assert Inbound.from_json(envelope.to_json()) == envelope
    assert "باشگاه".encode() in envelope.to_json()
