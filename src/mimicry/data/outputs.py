"""Writing a command's outputs without ever costing the user data.

Every output set (a dataset and its report, say) is written as temporary files in the target
directories, fsynced, then renamed over the targets only once all of them are complete, so a
failure while preparing any of them replaces none. Temporary names carry the writer's pid: a run
killed outright leaves its temp file, and the next write to that directory removes it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from mimicry.errors import MimicryError

_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(inputs: Iterable[str | Path | None], outputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is a directory or the same file as an input (or as another output)."""
    ins = [Path(p) for p in inputs if p is not None]
    outs = [Path(p) for p in outputs if p is not None]
    for i, out in enumerate(outs):
        if out.is_dir():
            raise MimicryError(f"output {out} is a directory; give a file path (e.g. {out / 'out.jsonl'})")
        for src in ins:
            if _same_file(out, src):
                raise MimicryError(
                    f"output {out} is the input file {src}; refusing to overwrite it; choose another --out"
                )
        for other in outs[i + 1 :]:
            if _same_file(out, other):
                raise MimicryError(f"two outputs are the same file: {out}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(directory: Path) -> list[Path]:
    """Remove temp files left in `directory` by writers that are no longer running."""
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        match = _TMP.match(entry.name)
        if match and entry.is_file() and not _alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def write_outputs(files: Mapping[str | Path, str | bytes]) -> None:
    """Write all `files` or none: temps first (fsynced, the old file's mode kept), then renames."""
    staged: list[tuple[str, Path]] = []
    try:
        for target, content in files.items():
            path = Path(target)
            if path.is_dir():
                raise MimicryError(f"output {path} is a directory; give a file path")
            path.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temps(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
            staged.append((tmp, path))
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if path.exists():
                os.chmod(tmp, path.stat().st_mode & 0o7777)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
        for tmp, path in staged:
            os.replace(tmp, path)
        for directory in {path.parent for _, path in staged}:
            _fsync_dir(directory)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
