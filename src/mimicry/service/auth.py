"""API keys and organisations: keys are shown once and stored as SHA-256 hashes; each maps to one org.

Keys are 32 random bytes, so a plain SHA-256 (no salt, no slow hash) is enough to make the stored
value useless to a reader of the database, and a lookup is one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from sqlalchemy import select

from mimicry.service.db import ApiKey, Database, Org, new_id

KEY_PREFIX = "mk-"


@dataclass(frozen=True)
class Caller:
    org_id: str
    key_id: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Database, org_name: str) -> tuple[str, str]:
    """A new key for `org_name` (the org is created on first use); returns (key, org id)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.session.begin() as s:
        org = s.scalar(select(Org).where(Org.name == org_name))
        if org is None:
            org = Org(id=new_id("org"), name=org_name)
            s.add(org)
            s.flush()
        s.add(ApiKey(id=new_id("key"), org_id=org.id, key_hash=hash_key(key), prefix=key[:8]))
        return key, org.id


def lookup(db: Database, key: str) -> Caller | None:
    with db.session() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked.is_(False)))
        return Caller(row.org_id, row.id) if row else None


class RateLimiter:
    """A sliding one-minute window per key, in this server process."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key_id: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        t = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key_id, deque())
            while hits and hits[0] <= t - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False, max(0.0, hits[0] + 60 - t)
            hits.append(t)
            return True, 0.0
