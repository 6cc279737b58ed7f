"""The one reader of user JSON/JSONL files: every command (and the service) parses datasets here.

Why one reader: a dataset is untrusted input. Encoding, line endings, size, nesting and values
JSON cannot round-trip are checked once, and every bad line becomes a numbered rejection (or a
one-line file error) instead of a traceback in whichever command happened to read it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimicry.errors import MimicryError

MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class BadLine:
    """A line that could not be read as a JSON value; `reason` says why in the user's terms."""

    line: int
    reason: str


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _check_value(value: Any) -> None:
    """Refuse values deeper than MAX_DEPTH and lone surrogates; iterative, so no recursion limit."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(text[err.start])
        raise ValueError(f"a string holds a lone surrogate (\\u{code:04x}), which is not text") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range (numbers must be finite)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def parse_json(text: str) -> Any:
    """Parse one JSON document with the reader's limits; ValueError with a short reason otherwise.

    The full walk (depth, lone surrogates) runs only on text that could fail it: more brackets than
    the depth limit, or a surrogate escape. Plain rows, nearly all of them, skip it.
    """
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}" if err.lineno > 1 else f"column {err.colno}"
        raise ValueError(f"malformed JSON: {err.msg} ({where})") from None
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if text.count("[") + text.count("{") > MAX_DEPTH or _SURROGATE_ESCAPE.search(text):
        _check_value(value)
    return value


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes without a UTF-8 BOM; a missing, directory, binary or UTF-16 file is a file error."""
    path = Path(path)
    if path.is_dir():
        raise MimicryError(f"{path} is a directory; give a .jsonl or .json file")
    if not path.is_file():
        raise MimicryError(f"file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MimicryError(f"cannot read {path}: {err.strerror}") from None
    if data.startswith(_UTF16_BOMS):
        raise MimicryError(f"{path} is UTF-16 encoded; save it as UTF-8 (JSON Lines must be UTF-8)")
    if b"\x00" in data[:8192]:
        raise MimicryError(f"{path} is a binary file (it holds NUL bytes), not JSON Lines")
    return data[len(BOM) :] if data.startswith(BOM) else data


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None


def iter_jsonl(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any | BadLine]]:
    """(line number, value or BadLine) for every non-blank line.

    Lines are split on LF only (CR before it is dropped), so U+2028 and other Unicode separators
    inside strings never split a record, as `str.splitlines` would.
    """
    data = read_bytes(path)
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        if len(raw) > max_line_bytes:
            yield lineno, BadLine(lineno, f"line is {len(raw):,} bytes, over the {max_line_bytes:,}-byte limit")
            continue
        try:
            yield lineno, parse_json(_decode(raw))
        except ValueError as err:
            yield lineno, BadLine(lineno, str(err))


def read_json(path: str | Path) -> Any:
    """A whole-file JSON document (e.g. an Alpaca list); any problem is one file error with its line."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise MimicryError(f"{path}: line {line}: not UTF-8 text") from None
    try:
        return parse_json(text)
    except ValueError as err:
        raise MimicryError(f"{path}: {err}") from None
