"""Agents' credentials: argon2 password hashes, browser sessions and API bearer tokens.

Only hashes of session and API tokens are stored, so a database leak does not log anyone in."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.contacts import normalize_email
from storage.db import SessionFactory
from storage.models import Agent, ApiToken, Session, TeamMember, utcnow

_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not a password anyone has")
# Argon2 holds a core and 64 MiB for ~50-100 ms a hash: off the event loop, in a pool of its own
# so that a burst of logins bounds memory and leaves the default executor to everyone else.
_hashing = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="argon2")
ROLES = ("admin", "agent")
MIN_PASSWORD = 10


class AccountError(Exception):
    """An account cannot be created or changed as asked."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The agent a request acts for."""

    id: int
    email: str
    name: str
    role: str
    team_ids: frozenset[int]
    csrf_token: str | None  # set for cookie sessions, which must send it back on writes
    locale: str = "fa"
    presence: str = "offline"
    """As it was when the request was authenticated."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """Blocks for the hash's whole cost; async code awaits `hash_password_off_loop` instead."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


async def hash_password_off_loop(password: str) -> str:
    """`hash_password` in the hashing pool, leaving the event loop free meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(_hashing, hash_password, password)


def _verify(password_hash: str, password: str) -> str | None:
    """Whether `password` matches: `None` when not, else the hash to store (a new one when the
    hasher's parameters changed since, the same one otherwise)."""
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(password_hash):
        return _hasher.hash(password)
    return password_hash


async def create_agent(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    password: str,
    role: str = "agent",
    capacity: int = 10,
) -> Agent:
    address = normalize_email(email)
    if address is None:
        raise AccountError(f"email: {email!r} is not an email address")
    if role not in ROLES:
        raise AccountError(f"role: one of {', '.join(ROLES)}")
    # Hashed before the session's first statement starts a transaction, so that none is held
    # meanwhile (on SQLite that would be the database's write lock).
    password_hash = await hash_password_off_loop(password)
    if await session.scalar(select(Agent.id).where(Agent.email == address)) is not None:
        raise AccountError(f"an agent with email {address} already exists")
    agent = Agent(
        email=address,
        name=name.strip() or address,
        role=role,
        password_hash=password_hash,
        capacity=capacity,
        presence="offline",
        active=True,
    )
    session.add(agent)
    await session.flush()
    return agent


async def authenticate(sessions: SessionFactory, email: str, password: str) -> Agent | None:
    """The active agent with this email and password, or `None`. Takes the session factory, not
    a session: no transaction may be open while the password is checked (on SQLite that would
    hold the database's write lock), so it opens short ones of its own around the check."""
    address = normalize_email(email) or ""
    async with sessions() as session:
        agent = await session.scalar(select(Agent).where(Agent.email == address))
    verified = await asyncio.get_running_loop().run_in_executor(
        _hashing, _verify, agent.password_hash if agent else _DUMMY_HASH, password
    )
    if verified is None or agent is None or not agent.active:
        return None
    if verified != agent.password_hash:
        async with sessions.begin() as session:
            await session.execute(
                update(Agent).where(Agent.id == agent.id).values(password_hash=verified)
            )
        agent.password_hash = verified
    return agent


async def open_session(
    session: AsyncSession, agent: Agent, *, lifetime: timedelta
) -> tuple[str, str]:
    """Start a browser session; returns (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    await session.execute(delete(Session).where(Session.expires_at < now))
    session.add(
        Session(
            token_hash=token_hash(token),
            agent_id=agent.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token, csrf


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(Session).where(Session.token_hash == token_hash(token)))


async def create_api_token(session: AsyncSession, agent_id: int, name: str) -> str:
    return (await issue_api_token(session, agent_id, name))[1]


async def issue_api_token(session: AsyncSession, agent_id: int, name: str) -> tuple[int, str]:
    """Create a bearer token; returns its id (by which it is listed and revoked) and the token,
    which is not stored and cannot be shown again."""
    token = "pk_" + secrets.token_urlsafe(32)
    row = ApiToken(agent_id=agent_id, name=name, token_hash=token_hash(token))
    session.add(row)
    await session.flush()
    return row.id, token


async def list_api_tokens(session: AsyncSession, agent_id: int) -> list[ApiToken]:
    return list(
        await session.scalars(
            select(ApiToken).where(ApiToken.agent_id == agent_id).order_by(ApiToken.id)
        )
    )


async def revoke_api_token(session: AsyncSession, agent_id: int, token_id: int) -> str | None:
    """Delete one of the agent's tokens. Returns its hash, by which the streams it opened are
    found, or `None` when the agent has no such token."""
    row = await session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.agent_id == agent_id)
    )
    if row is None:
        return None
    await session.delete(row)
    return row.token_hash


async def _principal(session: AsyncSession, agent: Agent, csrf: str | None) -> Principal:
    teams = (
        await session.scalars(select(TeamMember.team_id).where(TeamMember.agent_id == agent.id))
    ).all()
    return Principal(
        id=agent.id,
        email=agent.email,
        name=agent.name,
        role=agent.role,
        team_ids=frozenset(teams),
        csrf_token=csrf,
        locale=agent.locale,
        presence=agent.presence,
    )


async def from_session_cookie(
    session: AsyncSession, token: str, *, now: datetime
) -> Principal | None:
    row = await session.get(Session, token_hash(token))
    if row is None or row.expires_at <= now:
        return None
    agent = await session.get(Agent, row.agent_id)
    if agent is None or not agent.active:
        return None
    return await _principal(session, agent, row.csrf_token)


async def from_bearer(session: AsyncSession, token: str, *, now: datetime) -> Principal | None:
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None:
        return None
    agent = await session.get(Agent, row.agent_id)
    if agent is None or not agent.active:
        return None
    return await _principal(session, agent, None)
