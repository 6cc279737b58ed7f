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

from mimicry.errors import DataError, MimicryError
from mimicry.hashing import sha256_file

ENV_VAR = "MIMICRY_DATA"
_override: Path | None = None
_SUM_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}) [ *](?P<name>\S.*)$")


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
        if not self.inside(relative):
            raise MimicryError(f"data file {relative!r} is outside the data root {self.path}")
        if not full.is_file():
            raise MimicryError(
                f"data file {relative!r} is missing from the data root {self.path}. "
                f"Point {ENV_VAR} (or --data-root) at a complete copy of the bundle."
            )
        return full

    def expected_checksums(self) -> dict[str, str]:
        """SHA256SUMS parsed strictly: a malformed line, an empty file or a path outside the root is an error."""
        sums = self.path / "SHA256SUMS"
        if not sums.is_file():
            raise MimicryError(f"{sums} is missing: the data root must hold the bundle's SHA256SUMS")
        try:
            text = sums.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{sums} is not UTF-8 text") from None
        expected: dict[str, str] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            match = _SUM_LINE.match(line.strip())
            if not match:
                raise DataError(f"{sums}: line {lineno} is not '<64 hex digits>  <path>': {line[:80]!r}")
            name = match["name"]
            if not self.inside(name):
                raise DataError(f"{sums}: line {lineno} names {name!r}, which is outside the data root")
            expected[name] = match["digest"].lower()
        if not expected:
            raise DataError(f"{sums} lists no files: nothing can be verified")
        return expected

    def inside(self, relative: str) -> bool:
        """Whether `relative` names a path inside the root (no absolute path, no `..` out of it)."""
        if Path(relative).is_absolute():
            return False
        return (self.path / relative).resolve().is_relative_to(self.path)

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
