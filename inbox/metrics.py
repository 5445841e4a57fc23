"""Prometheus metrics of one process, in its own registry (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.inbound = Counter(
            "pishkhan_inbound_messages_total",
            "Inbound messages queued, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.routed = Counter(
            "pishkhan_routed_messages_total",
            "Queue items the router finished, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "pishkhan_rejected_requests_total",
            "Channel requests refused, by channel and status",
            ["channel", "status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "pishkhan_deliveries_total",
            "Outbound delivery attempts, by channel and result",
            ["channel", "result"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "pishkhan_queue_depth",
            "Items waiting in the queue",
            ["topic"],
            registry=self.registry,
        )
        self.queue_pending = Gauge(
            "pishkhan_queue_pending",
            "Items claimed and not yet acknowledged",
            ["topic"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "pishkhan_queue_dead_letters",
            "Items that kept failing",
            ["topic"],
            registry=self.registry,
        )
        self.queue_lag = Gauge(
            "pishkhan_queue_lag_seconds",
            "How long the oldest waiting item has waited (consumer lag)",
            ["topic"],
            registry=self.registry,
        )
        self.leading = Gauge(
            "pishkhan_poller_leading",
            "1 while this process reads the channel (holds its poller lease), else 0",
            ["channel"],
            registry=self.registry,
        )
        self.fanout_connected = Gauge(
            "pishkhan_event_fanout_connected",
            "1 while this web process receives other processes' events through Redis",
            registry=self.registry,
        )
        self.websockets = Gauge(
            "pishkhan_event_subscribers", "Open realtime connections", registry=self.registry
        )
        self.route_seconds = Histogram(
            "pishkhan_route_seconds",
            "Time to route one inbound message",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
