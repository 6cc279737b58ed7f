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
        from mimicry.models.loading import trust_model_roots

        home = Path(home) if home else service_home()
        # The policy's base models are the operator's: adapters trained on them load from there.
        trust_model_roots(list(policy.base_models.values()))
        return cls(policy, Database(database_url), Store(home / "store"), home)

    def workspace(self, job_id: str) -> Path:
        return self.home / "work" / job_id
