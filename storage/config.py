"""Configuration of the database and the queue."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sqlite+aiosqlite:///pishkhan.db"
    """SQLAlchemy URL: `sqlite+aiosqlite:///FILE` (embedded) or `postgresql+asyncpg://...`."""
    schema_: str | None = Field(default=None, alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """PostgreSQL only: the schema to keep Pishkhan's tables in (default: `public`)."""
    pool_size: int = Field(default=10, ge=1)
    sqlite_synchronous: Literal["full", "normal"] = "full"
    """`full` survives power loss; `normal` survives a process crash and is faster."""
    echo: bool = False


class QueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sql"
    """`sql` keeps the queue in the database; `redis://HOST:PORT/DB` uses Redis Streams."""
    prefix: str = "pishkhan"
    partitions: int = Field(default=16, ge=1, le=1024)
    max_attempts: int = Field(default=5, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    poller_lease_seconds: float = Field(default=15.0, ge=1)
    """At scale: how long a poller's leadership of a mailbox or bot outlives its last renewal
    (a standby takes over within this time of the leader's death)."""
    batch_size: int = Field(default=100, ge=1)
