"""Reading database dumps: format by content, compressed or in a tar, and plain SQL guarded.

Why a module of its own: the dump is untrusted input. Everything that reads its bytes lives
here, so that what may reach psql is decided in one place (see ``guarded_sql``).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import re
import secrets
from collections.abc import Iterator
from typing import IO, Any

CHUNK = 1 << 20


class RestoreError(RuntimeError):
    """A restore failed; the message fits the summary line."""


# What a plain dump may hold that we must not pass on: pg_dump's own \restrict and \unrestrict
# lines (ours stays in force). COPY data runs from a "COPY ... FROM stdin;" line to "\.".
OWN_RESTRICT_RE = re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]*[ \t\r]*")
COPY_START_RE = re.compile(rb"COPY [^\n]* FROM stdin;[ \t\r]*")
COPY_END_RE = re.compile(rb"\\\.[ \t\r]*")
SPECIAL_HEAD = re.compile(rb"COPY |\\")  # lines worth a look outside COPY data
SPECIAL_NEXT = re.compile(rb"\n(?:COPY |\\)")
COPY_END_HEAD = re.compile(rb"\\\.")
COPY_END_NEXT = re.compile(rb"\n\\\.")


class Prefixed:
    """A stream whose first bytes were read ahead to recognise its format."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head = head
        self.rest = rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0:
                data, self.head = self.head + self.rest.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.rest.read(size)


class Hashing:
    """Reads a stream while computing its SHA-256, to check a checksum given by the master."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


def read_head(stream: Any, size: int) -> bytes:
    parts: list[bytes] = []
    missing = size
    while missing > 0:
        data = stream.read(missing)
        if not data:
            break
        parts.append(data)
        missing -= len(data)
    return b"".join(parts)


def open_dump(stream: Any) -> tuple[str, str, Any]:
    """Recognise (compression, format, decompressed stream): format is sql, custom or tar."""
    head = read_head(stream, 6)
    stream = Prefixed(head, stream)
    compression = "none"
    if head.startswith(b"\x1f\x8b"):
        compression, stream = "gzip", gzip.GzipFile(fileobj=stream, mode="rb")
    elif head.startswith(b"BZh"):
        compression, stream = "bzip2", bz2.BZ2File(stream)
    elif head.startswith(b"\xfd7zXZ\x00"):
        compression, stream = "xz", lzma.LZMAFile(stream)  # noqa: SIM115 - a stream we return
    try:
        head = read_head(stream, 512)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise RestoreError(f"unreadable {compression} data: {exc}") from None
    stream = Prefixed(head, stream)
    if head.startswith(b"PGDMP"):
        kind = "custom"
    elif len(head) == 512 and head[257:262] == b"ustar":
        kind = "tar"
    else:
        kind = "sql"
    return compression, kind, stream


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def guarded_sql(stream: Any) -> Iterator[bytes]:
    """The dump's bytes behind our own ``\\restrict KEY``, minus the dump's (un)restrict lines.

    The key is random and never printed, so nothing in the dump can lift the restriction;
    psql then refuses every backslash command of the dump (the COPY data end ``\\.`` is
    not one). Only whole lines are looked at; regex searches keep this at disk speed.
    """
    yield b"\\restrict " + secrets.token_hex(24).encode() + b"\n"
    pending = b""
    in_copy = False
    while True:
        chunk = stream.read(CHUNK)
        data = pending + chunk
        end = len(data) if not chunk else data.rfind(b"\n") + 1
        pending = data[end:]
        pos = 0
        while pos < end:
            if in_copy:
                stop = next_line(data, COPY_END_HEAD, COPY_END_NEXT, COPY_END_RE, pos, end)
                cut = end if stop is None else line_end(data, stop, end)
                in_copy = stop is None
                yield data[pos:cut]
                pos = cut
                continue
            start = next_line(data, SPECIAL_HEAD, SPECIAL_NEXT, None, pos, end)
            if start is None:
                yield data[pos:end]
                break
            cut = line_end(data, start, end)
            line = data[start:cut].rstrip(b"\n")
            if OWN_RESTRICT_RE.fullmatch(line):
                yield data[pos:start]  # dropped: the dump's own (un)restrict
            else:
                yield data[pos:cut]
                in_copy = COPY_START_RE.fullmatch(line) is not None
            pos = cut
        if not chunk:
            return


def next_line(
    data: bytes,
    head: re.Pattern[bytes],
    after_newline: re.Pattern[bytes],
    whole: re.Pattern[bytes] | None,
    pos: int,
    end: int,
) -> int | None:
    """Start of the first line of data[pos:end] (``pos`` starts a line) that begins with
    ``head`` and, if given, matches ``whole``."""
    at: int | None = pos if head.match(data, pos, end) else None
    search = pos
    while True:
        if at is None:
            found = after_newline.search(data, search, end)
            if found is None:
                return None
            at = found.start() + 1
        if whole is None or whole.fullmatch(data[at : line_end(data, at, end)].rstrip(b"\n")):
            return at
        search, at = at, None


def line_end(data: bytes, start: int, end: int) -> int:
    stop = data.find(b"\n", start, end)
    return end if stop < 0 else stop + 1
