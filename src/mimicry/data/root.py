"""The data root: where the public bundle lives (MIMICRY_DATA or --data-root).

The layout is that of ../shared/data: `<group>/<name>.<ext>`, a MANIFEST.md table with
sources, rows and licences, and SHA256SUMS covering every file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mimicry.errors import MimicryError
from mimicry.hashing import sha256_file

ENV_VAR = "MIMICRY_DATA"
_override: Path | None = None


def set_data_root(path: str | Path | None) -> None:
    """Set the data root for this process (the CLI's --data-root); None falls back to MIMICRY_DATA."""
    global _override
    _override = Path(path) if path is not None else None
    data_root.cache_clear()


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    rows: int
    license: str
    description: str


@dataclass(frozen=True)
class FileCheck:
    path: str
    status: str  # "ok", "missing" or "corrupt"


@dataclass(frozen=True)
class DataRoot:
    path: Path

    def file(self, relative: str) -> Path:
        """The path of a bundle file; a missing file is an error naming the file and the root."""
        full = self.path / relative
        if not full.is_file():
            raise MimicryError(
                f"data file {relative!r} is missing from the data root {self.path}. "
                f"Point {ENV_VAR} (or --data-root) at a complete copy of the bundle."
            )
        return full

    def expected_checksums(self) -> dict[str, str]:
        sums = self.path / "SHA256SUMS"
        if not sums.is_file():
            raise MimicryError(f"{sums} is missing: the data root must hold the bundle's SHA256SUMS")
        expected: dict[str, str] = {}
        for line in sums.read_text(encoding="utf-8").splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                expected[name.lstrip("*")] = digest
        return expected

    def check(self) -> list[FileCheck]:
        results = []
        for name, digest in sorted(self.expected_checksums().items()):
            full = self.path / name
            if name == "SHA256SUMS":
                continue
            if not full.is_file():
                results.append(FileCheck(name, "missing"))
            else:
                results.append(FileCheck(name, "ok" if sha256_file(full) == digest else "corrupt"))
        return results

    def manifest(self) -> dict[str, ManifestEntry]:
        """Parse MANIFEST.md's table: local path, rows, licence and description of each file."""
        manifest = self.path / "MANIFEST.md"
        entries: dict[str, ManifestEntry] = {}
        if not manifest.is_file():
            return entries
        for line in manifest.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 9 or not cells[0].startswith("`"):
                continue
            path = cells[0].strip("`")
            rows = int(re.sub(r"[^0-9]", "", cells[5]) or 0)
            entries[path] = ManifestEntry(path, rows, cells[6], cells[7])
        return entries


@cache
def data_root() -> DataRoot:
    """The configured data root; fails with an actionable message when none is set or it is absent."""
    raw = _override or os.environ.get(ENV_VAR)
    if not raw:
        raise MimicryError(
            f"no data root: set {ENV_VAR} to the data bundle (for example ../shared/data) or pass --data-root"
        )
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise MimicryError(f"the data root {path} does not exist (from {ENV_VAR} or --data-root)")
    return DataRoot(path)
