"""What every service process shares: the policy, the database, the file store, the work directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mimicry.service.db import Database, service_home
from mimicry.service.policy import Policy
from mimicry.service.storage import Store


@dataclass
class Runtime:
    policy: Policy
    db: Database
    store: Store
    home: Path

    @classmethod
    def open(cls, policy: Policy, database_url: str | None = None, home: Path | None = None) -> Runtime:
        home = Path(home) if home else service_home()
        return cls(policy, Database(database_url), Store(home / "store"), home)

    def workspace(self, job_id: str) -> Path:
        return self.home / "work" / job_id
