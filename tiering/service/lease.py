"""The tiering lease: a key in Redis that lets one sidecar replica at a time run tiering passes."""

from __future__ import annotations

import logging

import redis

from tiering.errors import ConfigurationError
from tiering.shared_scores import SharedScoresError

logger = logging.getLogger(__name__)

_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaderLease:
    """A lease in Redis that lets one replica at a time run tiering passes.

    The holder writes its id with SET NX PX ``ttl_s`` and must renew it before the TTL
    runs out. Renewal and release change the key only while its value is this
    replica's id. If the holder stops without releasing, another replica can take the
    lease after ``ttl_s``. Thread-safe.

    NOTE: a pass that outlives the TTL while renewals fail (Redis unreachable) can
    overlap a pass of the next holder. Manifest commits are conditional writes that
    retry on top of the other writer's version, so neither pass overwrites the
    other's commit, but both may move the same vectors.
    """

    def __init__(self, client: redis.Redis, key: str, holder_id: str, ttl_s: float):
        if ttl_s <= 0:
            raise ConfigurationError(f"Invalid lease TTL {ttl_s} s: it must be positive.")
        self.key = key
        self.holder_id = holder_id
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._client = client
        self._renew = client.register_script(_RENEW_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._held = False

    @property
    def held(self) -> bool:
        """Whether the last acquire or renew succeeded (the lease may have expired since)."""
        return self._held

    def acquire(self) -> bool:
        """Take the lease, or extend it if this replica holds it; return whether it is held.

        Raises:
            SharedScoresError: Redis is unreachable or timed out; the lease counts as not held.
        """
        try:
            if self._client.set(self.key, self.holder_id, nx=True, px=self.ttl_ms):
                if not self._held:
                    logger.info("Replica %s took the tiering lease %s", self.holder_id, self.key)
                self._held = True
                return True
            self._held = bool(self._renew(keys=[self.key], args=[self.holder_id, self.ttl_ms]))
            return self._held
        except redis.RedisError as exc:
            self._held = False
            raise SharedScoresError(
                f"Taking the tiering lease {self.key!r} in Redis failed: {exc}. No tiering pass "
                "runs until Redis is reachable, so that two replicas never tier at once."
            ) from exc

    def renew(self) -> bool:
        """Extend the lease if this replica holds it; return whether it is still held.

        Raises:
            SharedScoresError: Redis is unreachable or timed out.
        """
        try:
            held = bool(self._renew(keys=[self.key], args=[self.holder_id, self.ttl_ms]))
        except redis.RedisError as exc:
            raise SharedScoresError(f"Renewing the tiering lease {self.key!r} failed: {exc}.") from exc
        if self._held and not held:
            logger.warning("Replica %s lost the tiering lease %s", self.holder_id, self.key)
        self._held = held
        return held

    def release(self) -> None:
        """Give the lease up if this replica holds it. Raises SharedScoresError."""
        try:
            self._release(keys=[self.key], args=[self.holder_id])
        except redis.RedisError as exc:
            raise SharedScoresError(f"Releasing the tiering lease {self.key!r} failed: {exc}.") from exc
        finally:
            self._held = False

    def holder(self) -> str | None:
        """Return the id of the replica that holds the lease, or None. Raises SharedScoresError."""
        try:
            value = self._client.get(self.key)
        except redis.RedisError as exc:
            raise SharedScoresError(f"Reading the tiering lease {self.key!r} failed: {exc}.") from exc
        return None if value is None else str(value)
