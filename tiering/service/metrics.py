"""Prometheus metrics of the sidecar, in a registry of their own per application.

Request metrics are labelled with the operation and with ``tier``: ``hot`` when the
request reached the hot tier only, ``hot+cold`` when it also read or wrote the cold
tier. The gauges of tier sizes are refreshed when ``/metrics`` is scraped.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from tiering.errors import TieringError
from tiering.store import TieredStore

logger = logging.getLogger(__name__)

TRACKER_BYTES_EVERY_S = 60.0
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PASS_BUCKETS_S = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


class ServiceMetrics:
    """Every metric the service exports. Thread-safe (prometheus-client's own locks)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self._tracker_bytes_at_s = -float("inf")
        r = self.registry
        self.requests = Counter(
            "tiering_requests", "API requests by operation, tiers reached and HTTP status.",
            ["operation", "tier", "status"], registry=r,
        )
        self.request_seconds = Histogram(
            "tiering_request_duration_seconds", "API request latency by operation and tiers reached.",
            ["operation", "tier"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.results = Counter(
            "tiering_results", "Search hits and fetched records returned, by the tier that served them.",
            ["operation", "tier"], registry=r,
        )

        self.vectors = Gauge("tiering_vectors", "Vectors stored per tier.", ["tier"], registry=r)
        self.tier_bytes = Gauge(
            "tiering_tier_bytes",
            "Bytes per tier: hot raw vectors (count x dim x 4, an estimate of the backend's share), "
            "cold Parquet segments and the cold FAISS index.",
            ["tier", "kind"], registry=r,
        )

        self.passes = Counter(
            "tiering_passes", "Tiering passes by result: ok, dry_run, failed, skipped.",
            ["result"], registry=r,
        )
        self.demoted = Counter("tiering_demoted_vectors", "Vectors moved from hot to cold.", registry=r)
        self.promoted = Counter("tiering_promoted_vectors", "Vectors moved from cold to hot.", registry=r)
        self.pass_seconds = Histogram(
            "tiering_pass_duration_seconds", "Duration of tiering passes that ran.",
            buckets=PASS_BUCKETS_S, registry=r,
        )

        self.tracked_ids = Gauge("tiering_access_tracked_ids", "Ids in the access tracker.", registry=r)
        self.tracker_bytes = Gauge(
            "tiering_access_tracker_bytes", "Estimated memory of the access tracker.", registry=r
        )

        self.score_syncs = Counter(
            "tiering_score_syncs", "Flushes of access scores to Redis by result: ok, failed.",
            ["result"], registry=r,
        )
        self.score_pending_ids = Gauge(
            "tiering_score_pending_ids", "Ids with access changes not yet sent to Redis.", registry=r
        )
        self.score_dropped_hits = Gauge(
            "tiering_score_dropped_hits", "Hits dropped since start because Redis was unreachable.",
            registry=r,
        )

        self.leader = Gauge("tiering_leader", "1 while this replica holds the tiering lease.", registry=r)
        self.ready = Gauge("tiering_ready", "1 when the store is open and the backend answered.", registry=r)

    def observe_request(self, operation: str, tier: str, status: int, duration_s: float) -> None:
        """Count one request and its latency."""
        self.requests.labels(operation, tier, str(status)).inc()
        self.request_seconds.labels(operation, tier).observe(duration_s)

    def refresh_store(self, store: TieredStore) -> None:
        """Update the tier and tracker gauges; a failing backend leaves the tier gauges as they were."""
        tracker = store.tracker
        self.tracked_ids.set(len(tracker))
        now_s = time.monotonic()
        if now_s - self._tracker_bytes_at_s >= TRACKER_BYTES_EVERY_S:
            # memory_bytes() visits every id, so a scrape computes it at most once a minute.
            self.tracker_bytes.set(tracker.memory_bytes())
            self._tracker_bytes_at_s = now_s
        pending = getattr(tracker, "pending_ids", None)
        if pending is not None:
            self.score_pending_ids.set(pending())
            self.score_dropped_hits.set(getattr(tracker, "dropped_hits", 0))
        cold = store.cold
        self.vectors.labels("cold").set(len(cold))
        segment_bytes = sum(entry.size_bytes for entry in cold.manifest.segments)
        self.tier_bytes.labels("cold", "segments").set(segment_bytes)
        self.tier_bytes.labels("cold", "index").set(cold.index_bytes())
        try:
            hot = store.backend.count()
        except TieringError as exc:
            logger.warning("Counting the hot tier for /metrics failed: %s", exc)
            return
        self.vectors.labels("hot").set(hot)
        self.tier_bytes.labels("hot", "vectors").set(hot * store.dim * 4)

    def render(self) -> bytes:
        """Return the metrics in Prometheus' text format."""
        return generate_latest(self.registry)
