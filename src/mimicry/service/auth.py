"""API keys and organisations: keys are shown once and stored as SHA-256 hashes; each maps to one org.

Keys are 32 random bytes, so a plain SHA-256 (no salt, no slow hash) is enough to make the stored
value useless to a reader of the database, and a lookup is one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mimicry.service.db import ApiKey, Database, Org, RateWindow, new_id

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
    """Requests per minute per key, counted in the database so every API process shares the count.

    A sliding window approximated from two fixed clock minutes (the last minute's count, weighted by
    how much of it still lies in the past 60 s, plus this minute's). Only allowed requests count, and
    the check and the increment are one statement (an upsert whose update applies only under the
    limit), so concurrent processes cannot both take the last slot.
    """

    def __init__(self, db: Database, per_minute: int) -> None:
        self.db = db
        self.per_minute = per_minute

    def allow(self, key_id: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        t = time.time()
        minute, into = int(t // 60), (t % 60) / 60
        table = RateWindow.__table__
        with self.db.session.begin() as s:
            previous = s.scalar(
                select(RateWindow.count).where(RateWindow.key_id == key_id, RateWindow.minute == minute - 1)
            )
            carried = (previous or 0) * (1 - into)
            room = self.per_minute - carried  # this minute's count must stay below it
            count = None
            if room > 0:
                insert = (postgresql_insert if self.db.dialect == "postgresql" else sqlite_insert)(table)
                stmt = insert.values(key_id=key_id, minute=minute, count=1).on_conflict_do_update(
                    index_elements=[table.c.key_id, table.c.minute],
                    set_={"count": table.c.count + 1},
                    where=table.c.count < room,
                )
                count = s.execute(stmt.returning(table.c.count)).scalar()
            if count == 1:  # a new minute for this key: its older minutes are no longer needed
                s.execute(delete(RateWindow).where(RateWindow.key_id == key_id, RateWindow.minute < minute - 1))
        if count is not None:
            return True, 0.0
        with self.db.session() as s:
            current = s.scalar(select(RateWindow.count).where(RateWindow.key_id == key_id, RateWindow.minute == minute))
        return False, self._wait(previous or 0, current or 0, into)

    def _wait(self, previous: int, current: int, into: float) -> float:
        """Seconds until the carried part of the last minute has decayed enough to make room."""
        end = (1 - into) * 60
        if current >= self.per_minute or not previous:  # this minute is full: wait until it is the last one
            return end + (1 - self.per_minute / current) * 60
        need = 1 - (self.per_minute - current) / previous  # the fraction of this minute to reach
        return max(0.0, (need - into) * 60)
