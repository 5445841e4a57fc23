"""Agents' credentials: argon2 password hashes, browser sessions and API bearer tokens.

Only hashes of session and API tokens are stored, so a database leak does not log anyone in."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.contacts import normalize_email
from storage.models import Agent, ApiToken, Session, TeamMember, utcnow

_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not a password anyone has")
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

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


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
    if await session.scalar(select(Agent.id).where(Agent.email == address)) is not None:
        raise AccountError(f"an agent with email {address} already exists")
    agent = Agent(
        email=address,
        name=name.strip() or address,
        role=role,
        password_hash=hash_password(password),
        capacity=capacity,
        presence="offline",
        active=True,
    )
    session.add(agent)
    await session.flush()
    return agent


async def authenticate(session: AsyncSession, email: str, password: str) -> Agent | None:
    address = normalize_email(email) or ""
    agent = await session.scalar(select(Agent).where(Agent.email == address))
    try:
        _hasher.verify(agent.password_hash if agent else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if agent is None or not agent.active:
        return None
    if _hasher.check_needs_rehash(agent.password_hash):
        agent.password_hash = _hasher.hash(password)
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
    token = "pk_" + secrets.token_urlsafe(32)
    session.add(ApiToken(agent_id=agent_id, name=name, token_hash=token_hash(token)))
    await session.flush()
    return token


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
