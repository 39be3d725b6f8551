"""Settings of the sidecar service, read from ``TIERING_*`` environment variables.

Every field of :class:`ServiceSettings` has one environment variable, listed in
:data:`ENVIRONMENT`; ``tiering serve`` options override them. Secrets (the Qdrant
API key, a password inside the Redis URL) are never logged or shown in ``repr``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tiering.config import ColdSearch, TieringConfig
from tiering.errors import ConfigurationError, ValidationError
from tiering.policy import HotBudget, PolicyConfig
from tiering.records import Metric

BACKENDS = ("qdrant", "milvus", "memory")


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one sidecar replica; times in seconds.

    Attributes:
        backend: ``qdrant``, ``milvus`` or ``memory`` (in process, lost on exit; for tests).
        backend_url: a backend URL as :mod:`tiering.connect` reads them (also Weaviate and
            Pinecone); when set, it wins over ``backend`` and its connection settings.
        qdrant_url: URL of a Qdrant server; when empty, ``qdrant_path`` is used.
        qdrant_path: folder of qdrant-client's local mode, or ``:memory:``.
        qdrant_api_key: API key of the Qdrant server.
        milvus_uri: Milvus server URL, or a ``.db`` file for Milvus Lite.
        collection: collection name in the backend; also names the Redis key prefix.
        dim: vector dimension.
        metric: ``cosine``, ``dot`` or ``l2``.
        backend_timeout_s: per-request timeout of the backend client.
        cold_dir: local folder of the cold tier, used when ``s3_url`` is empty.
        s3_url: ``s3://bucket/prefix`` of the cold tier (see :mod:`tiering.s3store` for the
            ``TIERING_S3_*`` variables it also reads).
        hot_max_count, hot_max_fraction, hot_max_bytes: the hot budget; unset limits do
            not apply, and the variable value ``none`` unsets the default fraction.
        half_life_s, min_idle_s, cooldown_s, promote_score, max_moves_per_pass: policy.
        cold_search: ``always``, ``fallback`` or ``never``.
        interval_s: seconds between tiering passes; 0 turns the background loop off.
        host, port: where the HTTP server listens.
        redis_url: Redis for shared access scores and the tiering lease; empty means
            this replica keeps scores in process and tiers on its own.
        redis_prefix: key prefix in Redis; empty means ``tiering:<collection>``.
        redis_timeout_s: socket and connect timeout of every Redis call.
        replica_id: this replica's name in the lease; empty means ``<hostname>-<pid>``.
        sync_interval_s: seconds between flushes of hits to Redis and lease renewals.
        lease_ttl_s: how long the lease outlives a replica that stopped renewing it.
        open_attempts: attempts to open the store at startup before giving up.
        max_body_bytes: largest request body accepted.
        log_level: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.
    """

    backend: str = "qdrant"
    backend_url: str = ""
    qdrant_url: str = ""
    qdrant_path: str = ":memory:"
    qdrant_api_key: str = field(default="", repr=False)
    milvus_uri: str = "./tiering-milvus.db"
    collection: str = "tiering"
    dim: int = 0
    metric: str = "cosine"
    backend_timeout_s: float = 10.0
    cold_dir: str = "./tiering-cold"
    s3_url: str = ""
    hot_max_count: int | None = None
    hot_max_fraction: float | None = 0.2
    hot_max_bytes: int | None = None
    half_life_s: float = 86_400.0
    min_idle_s: float = 3_600.0
    cooldown_s: float = 3_600.0
    promote_score: float = 3.0
    max_moves_per_pass: int = 100_000
    cold_search: str = "always"
    interval_s: float = 300.0
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str = field(default="", repr=False)
    redis_prefix: str = ""
    redis_timeout_s: float = 1.0
    replica_id: str = ""
    sync_interval_s: float = 5.0
    lease_ttl_s: float = 60.0
    open_attempts: int = 10
    max_body_bytes: int = 64 * 1024 * 1024
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigurationError(f"Unknown backend {self.backend!r}. Use one of: {', '.join(BACKENDS)}.")
        if self.dim < 1:
            raise ConfigurationError(
                f"Invalid dim {self.dim}: set TIERING_DIM to the vector dimension of the collection."
            )
        try:
            Metric.parse(self.metric)
        except ValidationError as exc:
            raise ConfigurationError(f"Invalid TIERING_METRIC: {exc}") from None
        ColdSearch.parse(self.cold_search)
        for name in ("backend_timeout_s", "redis_timeout_s", "sync_interval_s", "lease_ttl_s"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"Invalid {name} {getattr(self, name)}: it must be positive.")
        if self.interval_s < 0:
            raise ConfigurationError(f"Invalid interval_s {self.interval_s}: use 0 (off) or more.")
        if self.lease_ttl_s < 2 * self.sync_interval_s:
            raise ConfigurationError(
                f"lease_ttl_s {self.lease_ttl_s} must be at least twice sync_interval_s "
                f"{self.sync_interval_s}, because the lease is renewed once per sync interval."
            )
        if not 0 < self.port < 65_536:
            raise ConfigurationError(f"Invalid port {self.port}: use 1 to 65535.")
        if self.open_attempts < 1:
            raise ConfigurationError(f"Invalid open_attempts {self.open_attempts}: use 1 or more.")
        if self.max_body_bytes < 1024:
            raise ConfigurationError(f"Invalid max_body_bytes {self.max_body_bytes}: use 1024 or more.")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigurationError(
                f"Invalid log level {self.log_level!r}: use DEBUG, INFO, WARNING or ERROR."
            )
        self.tiering_config()

    @property
    def redis_key_prefix(self) -> str:
        return self.redis_prefix or f"tiering:{self.collection}"

    @property
    def replica_name(self) -> str:
        return self.replica_id or f"{socket.gethostname()}-{os.getpid()}"

    def tiering_config(self) -> TieringConfig:
        """Return the store settings. Raises ConfigurationError for an invalid policy."""
        budget = HotBudget(
            max_count=self.hot_max_count, max_fraction=self.hot_max_fraction, max_bytes=self.hot_max_bytes
        )
        policy = PolicyConfig(
            budget=budget,
            min_idle_s=self.min_idle_s,
            cooldown_s=self.cooldown_s,
            promote_score=self.promote_score,
            max_moves_per_pass=self.max_moves_per_pass,
        )
        return TieringConfig(
            half_life_s=self.half_life_s, policy=policy, cold_search=ColdSearch.parse(self.cold_search)
        )

    def summary(self) -> dict[str, Any]:
        """Return the settings without secrets, for the status endpoint and the startup log."""
        hidden = {"qdrant_api_key", "redis_url"}
        document = {item.name: getattr(self, item.name) for item in fields(self) if item.name not in hidden}
        document["redis"] = bool(self.redis_url)
        document["cold_tier"] = self.s3_url or self.cold_dir
        return document

    def with_overrides(self, **changes: Any) -> ServiceSettings:
        """Return a copy with the non-None ``changes`` applied. Raises ConfigurationError."""
        return replace(self, **{name: value for name, value in changes.items() if value is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServiceSettings:
        """Read the settings from ``TIERING_*`` variables (see :data:`ENVIRONMENT`).

        Keyword ``overrides`` that are not None win over the environment.

        Raises:
            ConfigurationError: a variable is not a number where one is needed, or a
                setting is invalid; the message names the variable and its value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            variable = ENVIRONMENT[item.name]
            text = env.get(variable)
            if text is None or text.strip() == "":
                continue
            values[item.name] = _parse(variable, text.strip(), str(item.type))
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


ENVIRONMENT = {item.name: f"TIERING_{item.name.upper()}" for item in fields(ServiceSettings)}
"""The environment variable of each setting: ``TIERING_`` and the field name in capitals."""


def _parse(variable: str, text: str, type_name: str) -> Any:
    if "None" in type_name and text.lower() in ("none", "off"):
        return None
    try:
        if type_name.startswith("int"):
            return int(text)
        if type_name.startswith("float"):
            return float(text)
    except ValueError:
        raise ConfigurationError(f"Invalid {variable}={text!r}: expected a number.") from None
    return text
