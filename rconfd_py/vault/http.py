"""A minimal HTTP/1.1 client on the standard library's socket and ssl: what talking to Vault needs
(JSON bodies, keep-alive, Content-Length or chunked answers, timeouts, TLS with a CA file).

Why not httpx (on the design card) or http.client: importing httpx and building its client costs
~130 ms and ~8 MB before the first request (README, "Dependencies"); http.client pulls the email
package in (~20 ms). This module imports in ~1 ms, and `ssl` only for https.

One persistent connection per thread (the engine fetches from a few threads at once).
"""

from __future__ import annotations

import socket
import threading
from collections import namedtuple
from urllib.parse import urlsplit

MAX_HEADER_LINES = 100
MAX_BODY = 64 * 1024 * 1024


class TransportError(Exception):
    """No (complete) answer: connection refused or reset, timeout, TLS failure."""

    def __init__(self, message: str, timeout: bool = False):
        super().__init__(message)
        self.timeout = timeout


Response = namedtuple("Response", "status reason body")


class HTTPClient:
    def __init__(self, base_url: str, *, cafile: str | None = None, timeout: float = 10.0,
                 headers: dict[str, str] | None = None):
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"unsupported URL {base_url!r} (expected http:// or https://)")
        self.tls = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.tls else 80)
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        host_header = self.host if ":" not in self.host else f"[{self.host}]"
        default_port = 443 if self.tls else 80
        host_header += "" if self.port == default_port else f":{self.port}"
        # the header lines every request carries, joined once
        self._common = "".join(f"{k}: {v}\r\n" for k, v in {
            "Host": host_header, "Accept": "application/json", "Connection": "keep-alive",
            **(headers or {})}.items())
        self._cafile = cafile
        self._ssl = None
        self._local = threading.local()

    def _context(self):
        if self._ssl is None:
            import ssl

            self._ssl = ssl.create_default_context(cafile=self._cafile)
        return self._ssl

    def _connect(self, timeout: float) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = self._context().wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            raise TransportError("connection timed out", timeout=True) from None
        except OSError as e:
            raise TransportError(e.strerror or str(e) or type(e).__name__) from None
        return sock

    def close(self) -> None:
        sock = getattr(self._local, "sock", None)
        if sock is not None:
            reader, self._local.sock, self._local.reader = self._local.reader, None, None
            reader.close()  # the socket's file descriptor is closed with the last of the two
            sock.close()

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = None
                ) -> Response:
        timeout = self.timeout if timeout is None else timeout
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._common}"
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode("latin-1") + (body or b"")
        reused = getattr(self._local, "sock", None) is not None
        try:
            return self._exchange(data, timeout, method)
        except _Stale:
            if not reused:
                raise TransportError("connection closed by the server") from None
            # a kept-alive connection the server had closed: nothing was answered, send again
            return self._exchange(data, timeout, method)

    def _exchange(self, data: bytes, timeout: float, method: str) -> Response:
        sock = getattr(self._local, "sock", None)
        fresh = sock is None
        if fresh:
            sock = self._local.sock = self._connect(timeout)
            # one buffered reader for the life of the connection: an answer is read whole
            # before the next request is sent, so nothing is left in it between requests
            self._local.reader = sock.makefile("rb")
        reader = self._local.reader
        sock.settimeout(timeout)
        got_bytes = False
        try:
            sock.sendall(data)
            head = _read_head(reader)
            got_bytes = bool(head)
            if not head:
                raise _Stale()
            resp, keep = _read_response(reader, head, method)
        except _Stale:
            self.close()
            if fresh:
                raise TransportError("connection closed by the server") from None
            raise
        except TimeoutError:
            self.close()
            raise TransportError("timed out", timeout=True) from None
        except (OSError, ValueError) as e:
            self.close()
            if not fresh and not got_bytes and isinstance(e, (ConnectionError, BrokenPipeError)):
                raise _Stale() from None
            raise TransportError(getattr(e, "strerror", None) or str(e) or type(e).__name__
                                 ) from None
        if not keep:
            self.close()
        return resp


class _Stale(Exception):
    """The reused connection was closed before any answer."""


def _read_head(reader) -> list[str]:
    """The status line and header lines ([] when the connection was closed before any byte).
    Usually the whole head is in the first segment: one search and one read, not a readline
    per header."""
    buffered = reader.peek(65536)
    end = buffered.find(b"\r\n\r\n")
    if end >= 0:
        return reader.read(end + 4).decode("latin-1").split("\r\n")[:-2]
    lines: list[str] = []
    for _ in range(MAX_HEADER_LINES):
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))
    raise ValueError("too many header lines")


def _read_response(reader, head: list[str], method: str) -> tuple[Response, bool]:
    try:
        version, status, *reason = head[0].split(" ", 2)
        code = int(status)
    except ValueError:
        raise ValueError("malformed HTTP status line") from None
    if not version.startswith("HTTP/1."):
        raise ValueError(f"unsupported protocol {version!r}")
    if len(head) > MAX_HEADER_LINES:
        raise ValueError("too many header lines")
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise ValueError("answer too large")
        body = reader.read(length)
        if len(body) != length:
            raise ValueError("answer cut short")
    else:
        body = reader.read(MAX_BODY)
        keep = False
    return Response(code, reason[0] if reason else "", body), keep


def _read_chunked(reader) -> bytes:
    parts, total = [], 0
    while True:
        size = int(reader.readline(1024).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise ValueError("answer too large")
        chunk = reader.read(size)
        if len(chunk) != size:
            raise ValueError("answer cut short")
        parts.append(chunk)
        reader.readline(16)  # CRLF after the chunk
