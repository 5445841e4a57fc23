"""The email channel over TLS: a Dovecot that requires it (STARTTLS and implicit TLS) and aiosmtpd
with STARTTLS and implicit TLS, all with a throwaway private CA the channel trusts through
`tls_ca_file`; a certificate it does not trust fails fast with a clear status, never hangs."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from channels.base import DeliveryError, Inbound, Outbound, Sender
from channels.email import EmailChannel, EmailConfig
from inbox.config import ConfigError, parse_config
from tests.fixtures.mail import PASSWORD, Dovecot, SmtpServer, customer_mail, require_dovecot
from tests.fixtures.services import IN_CI, unique
from tests.fixtures.stack import eventually
from tests.fixtures.tls import Certificates, make_certificates

ADDRESS = "support@pishkhan.test"


@pytest.fixture(scope="module")
def certs() -> Iterator[Certificates]:
    if shutil.which("openssl") is None:
        reason = "the openssl command is not installed (apt-get install -y openssl)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: .ci/run must install it")
        pytest.skip(reason)
    made = make_certificates()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(scope="module")
def tls_dovecot(certs: Certificates) -> Iterator[Dovecot]:
    """Dovecot with `ssl = required`: STARTTLS on `port`, implicit TLS on `ssl_port`."""
    require_dovecot()
    server = Dovecot(users=["support"], tls=(certs.cert, certs.key), ca=certs.ca)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(params=["starttls", "ssl"])
def tls_smtp(request: pytest.FixtureRequest, certs: Certificates) -> Iterator[SmtpServer]:
    context = certs.server_context()
    server = (
        SmtpServer(starttls=context)
        if request.param == "starttls"
        else SmtpServer(implicit_tls=context)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


class MemoryCursors:
    """The channel's CursorStore, in memory."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    async def get(self, channel: str, key: str) -> str | None:
        return self.values.get((channel, key))

    async def set(self, channel: str, key: str, value: str) -> None:
        self.values[(channel, key)] = value


def channel_config(
    dovecot: Dovecot,
    smtp: SmtpServer | None,
    *,
    imap: str,
    smtp_security: str = "none",
    **extra: Any,
) -> EmailConfig:
    return EmailConfig(
        name="support",
        address=ADDRESS,
        imap_host="127.0.0.1",
        imap_port=dovecot.ssl_port if imap == "ssl" else dovecot.port,
        imap_security=imap,  # type: ignore[arg-type]
        imap_username="support",
        imap_password=PASSWORD,  # type: ignore[arg-type]
        smtp_host="127.0.0.1",
        smtp_port=smtp.port if smtp else 1,
        smtp_security=smtp_security,  # type: ignore[arg-type]
        timeout_seconds=5,
        **extra,
    )


async def read_one(config: EmailConfig, dovecot: Dovecot) -> tuple[EmailChannel, Inbound]:
    """Start the channel on a fresh folder, deliver one mail, return what it queued."""
    mailbox = unique("box")
    await asyncio.to_thread(dovecot.create, "support", mailbox)
    channel = EmailChannel(config.model_copy(update={"mailbox": mailbox}))
    queued: list[Inbound] = []

    async def emit(inbound: Inbound) -> None:
        queued.append(inbound)

    await channel.start(emit, MemoryCursors())
    await asyncio.to_thread(
        dovecot.append, "support", customer_mail(message_id=f"<{unique('m')}@example.com>"), mailbox
    )

    async def got() -> list[Inbound]:
        return queued

    try:
        [inbound] = await eventually(got, timeout=10)
    except BaseException:
        await channel.stop()
        raise
    return channel, inbound


def reply(message_id: int = 7) -> Outbound:
    return Outbound(
        message_id=message_id,
        channel="support",
        recipient=Sender(external_id="maryam@example.com", name="Maryam"),
        text="سفارش شما ارسال شد.",
        subject="سفارش ۱۲۳",
    )


@pytest.mark.parametrize("imap", ["ssl", "starttls"])
async def test_reads_and_sends_over_tls_trusting_a_private_ca(
    imap: str, tls_dovecot: Dovecot, tls_smtp: SmtpServer, certs: Certificates
) -> None:
    security = "starttls" if tls_smtp.starttls is not None else "ssl"
    config = channel_config(
        tls_dovecot, tls_smtp, imap=imap, smtp_security=security, tls_ca_file=certs.ca
    )
    channel, inbound = await read_one(config, tls_dovecot)
    try:
        assert "سفارشم هنوز نرسیده است" in inbound.text
        assert channel.status()["connected"] and channel.status()["last_error"] == ""
        delivery = await channel.send(reply())
        [received] = await tls_smtp.wait_for(1)
        assert received.rcpt_tos == ["maryam@example.com"]
        assert received.message["Message-ID"].strip("<>") == delivery.external_id
    finally:
        await channel.stop()


@pytest.mark.parametrize("imap", ["ssl", "starttls"])
async def test_an_untrusted_imap_certificate_fails_fast_with_a_clear_status(
    imap: str, tls_dovecot: Dovecot
) -> None:
    # No tls_ca_file: the system's store does not know the private CA.
    channel = EmailChannel(channel_config(tls_dovecot, None, imap=imap))
    started = asyncio.get_running_loop().time()

    async def emit(inbound: Inbound) -> None:
        raise AssertionError("nothing may be read through an untrusted connection")

    await channel.start(emit, MemoryCursors())
    try:

        async def failed() -> str:
            return str(channel.status()["last_error"])

        error = await eventually(failed, timeout=5)
        assert "TLS with 127.0.0.1" in error and "not trusted" in error and "tls_ca_file" in error
        assert asyncio.get_running_loop().time() - started < 5
        assert not channel.status()["connected"]
    finally:
        await channel.stop()


async def test_an_untrusted_smtp_certificate_fails_the_reply_for_good_with_the_reason(
    tls_dovecot: Dovecot, tls_smtp: SmtpServer, certs: Certificates
) -> None:
    security = "starttls" if tls_smtp.starttls is not None else "ssl"
    trusted = channel_config(
        tls_dovecot, tls_smtp, imap="ssl", smtp_security=security, tls_ca_file=certs.ca
    )
    channel, _ = await read_one(trusted, tls_dovecot)  # running, with its token key
    await channel.stop()
    untrusted = EmailChannel(trusted.model_copy(update={"tls_ca_file": None}))
    await untrusted.start(_never, MemoryCursors())
    try:
        with pytest.raises(DeliveryError) as caught:
            await asyncio.wait_for(untrusted.send(reply()), 10)
        assert caught.value.permanent
        assert "SMTP TLS with 127.0.0.1" in caught.value.reason
        assert "not trusted" in caught.value.reason
        assert tls_smtp.received == []
    finally:
        await untrusted.stop()


async def _never(inbound: Inbound) -> None:
    return None


def test_tls_ca_file_must_be_a_readable_pem_file(tmp_path: Path) -> None:
    base = {
        "type": "email",
        "name": "support",
        "address": ADDRESS,
        "imap_host": "imap.example.com",
        "imap_username": "support",
        "imap_password": "${PISHKHAN_TEST_MAIL_PASSWORD}",
        "smtp_host": "smtp.example.com",
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PISHKHAN_TEST_MAIL_PASSWORD", "x")
        with pytest.raises(ConfigError) as missing:
            parse_config({"channels": [{**base, "tls_ca_file": str(tmp_path / "nope.pem")}]})
        assert "channels[0].tls_ca_file" in str(missing.value)
        junk = tmp_path / "junk.pem"
        junk.write_text("not a certificate")
        with pytest.raises(ConfigError) as unreadable:
            parse_config({"channels": [{**base, "tls_ca_file": str(junk)}]})
        assert "channels[0].tls_ca_file" in str(unreadable.value)
        assert "no PEM certificate" in str(unreadable.value)
        config = parse_config({"channels": [base]})
        [email] = config.channels
        assert isinstance(email, EmailConfig) and email.tls_ca_file is None  # the system store
    with pytest.raises(ValidationError):
        EmailConfig.model_validate({**base, "imap_password": "x", "tls_ca_file": 42})
