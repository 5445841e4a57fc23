"""What the web app's handlers are given: built once by the composition root (`inbox.runtime`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from channels.base import Channel
from inbox.config import Config
from inbox.login_limiter import InProcessLoginLimits, LoginLimits
from inbox.metrics import Metrics
from inbox.realtime import Hub
from routing.actions import Actions
from storage.blobs import SqlBlobStore
from storage.db import SessionFactory
from storage.queue import Queue


@dataclass
class Services:
    config: Config
    sessions: SessionFactory
    queue: Queue
    actions: Actions
    hub: Hub
    channels: Mapping[str, Channel]
    metrics: Metrics
    blobs: SqlBlobStore
    login_limiter: LoginLimits = field(default_factory=InProcessLoginLimits)


SERVICES = web.AppKey("services", Services)
