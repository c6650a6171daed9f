"""A small ``multipart/form-data`` parser for the upload endpoint.

The stdlib ``email`` parser copies every part several times and decodes headers in ways that
do not match browsers; uploads here are at most five files of at most 8 MB, so one pass of
``bytes.find`` over the body is both simpler and fast enough for benchmark traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


class MultipartError(ValueError):
    """The body is not a readable multipart form."""


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    data: bytes


def _header_params(value: str) -> Message:
    msg = Message()
    msg["content-type"] = value
    return msg


def boundary_of(content_type: str) -> bytes:
    msg = _header_params(content_type)
    if msg.get_content_type() != "multipart/form-data":
        raise MultipartError("not multipart/form-data")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("multipart body without a boundary")
    return boundary.encode("latin-1")


def _parse_disposition(value: str) -> tuple[str | None, str | None]:
    msg = Message()
    msg["content-disposition"] = value
    name = msg.get_param("name", header="content-disposition")
    filename = msg.get_filename()
    return (name if isinstance(name, str) else None), filename


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """Parts in body order; raises ``MultipartError`` when the framing is broken."""
    delimiter = b"--" + boundary_of(content_type)
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("boundary not found")
    parts: list[Part] = []
    pos = start + len(delimiter)
    while True:
        if body.startswith(b"--", pos):
            return parts  # closing delimiter
        if not body.startswith(b"\r\n", pos):
            raise MultipartError("malformed delimiter line")
        header_end = body.find(b"\r\n\r\n", pos + 2)
        if header_end < 0:
            raise MultipartError("part without headers end")
        next_delim = body.find(b"\r\n" + delimiter, header_end + 4)
        if next_delim < 0:
            raise MultipartError("part without closing boundary")
        name = filename = None
        for line in body[pos + 2 : header_end].split(b"\r\n"):
            key, _, value = line.decode("utf-8", "replace").partition(":")
            if key.strip().lower() == "content-disposition":
                name, filename = _parse_disposition(value.strip())
        if name is None:
            raise MultipartError("part without a name")
        parts.append(Part(name=name, filename=filename, data=body[header_end + 4 : next_delim]))
        pos = next_delim + 2 + len(delimiter)
