"""Settings of a tiered store."""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass, field

from tiering.coldindex import IndexSettings
from tiering.errors import ConfigurationError
from tiering.policy import PolicyConfig


class ColdSearch(str, enum.Enum):
    """When a search also queries the cold tier."""

    ALWAYS = "always"
    """Query both tiers concurrently and merge."""

    FALLBACK = "fallback"
    """Query the cold tier only for queries whose hot results are not good enough:
    fewer than k hits, or a k-th score below ``fallback_min_score``."""

    NEVER = "never"
    """Query the hot tier only."""

    @classmethod
    def parse(cls, value: str | ColdSearch) -> ColdSearch:
        """Return the mode named by ``value``. Raises ConfigurationError."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(mode.value for mode in cls)
            raise ConfigurationError(f"Unknown cold search mode {value!r}. Use one of: {names}.") from None


@dataclass(frozen=True)
class TieringConfig:
    """Settings of :class:`tiering.store.TieredStore`; times in seconds."""

    half_life_s: float = 86_400.0
    """Half-life of access scores."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    cold_search: ColdSearch = ColdSearch.ALWAYS
    fallback_min_score: float | None = None
    """In fallback mode, a k-th hot score below this also triggers a cold search."""

    index: IndexSettings = field(default_factory=IndexSettings)
    segment_rows: int = 50_000
    """Most rows written to one segment; larger demotions write several."""

    price_model: str = "pinecone-serverless"
    """Price model that dry runs use to estimate the monthly saving of a plan; see
    :func:`tiering.cost.estimate_tiering_cost`."""

    queries_per_month: float = 1_000_000.0
    """Query volume the saving estimate assumes."""

    writer_id: str = field(default_factory=socket.gethostname)
    """Name of this writer in journal entries. A store settles its own interrupted moves
    at once; give each process that writes the same cold tier from one host its own id."""

    recovery_lease_s: float = 300.0
    """Age after which another writer's unfinished move is taken as abandoned and settled."""

    search_threads: int = 2
    """Threads that query the two tiers concurrently."""

    parallel_tiers: bool | None = None
    """Whether a search queries the hot and cold tier concurrently. None chooses: yes for a
    backend reached over the network, no for an in-process one (qdrant-client local mode,
    Milvus Lite, the in-memory backend), whose Python work holds the GIL and would make the
    cold search wait for it."""

    def __post_init__(self) -> None:
        if not self.half_life_s > 0:
            raise ConfigurationError(f"Invalid half_life_s {self.half_life_s}: it must be positive.")
        if self.segment_rows < 1:
            raise ConfigurationError(f"Invalid segment_rows {self.segment_rows}: use 1 or more.")
        object.__setattr__(self, "cold_search", ColdSearch.parse(self.cold_search))
