"""A lean keep-alive HTTP/1.1 client for load generation.

httpx costs about a millisecond of CPU per request, which on a 2-core machine makes the load
generator, not the service, the bottleneck. This pool writes prepared requests on persistent
connections and reads the status and body, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib


class HttpFailure(Exception):
    """The connection broke or the answer was not HTTP/1.1."""


class _Stale(Exception):
    """The connection broke before the first byte of an answer."""


class KeepAlivePool:
    def __init__(self, host: str, port: int, headers: dict[str, str], connections: int) -> None:
        self.host = host
        self.port = port
        self.header_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )
        for _ in range(connections):
            self._idle.put_nowait(None)  # opened on first use
        self._open: list[asyncio.StreamWriter] = []

    async def post(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        """The status code and body of a POST. A kept-alive connection the server has closed
        meanwhile (uvicorn closes idle ones after 5 s) fails before any answer: the request is
        then sent once more on a new connection."""
        connection = await self._idle.get()
        reused = connection is not None
        try:
            try:
                return await self._exchange(connection, path, body, content_type)
            except _Stale:
                if not reused:
                    raise HttpFailure("ConnectionClosed") from None
            try:
                return await self._exchange(None, path, body, content_type)
            except _Stale:
                raise HttpFailure("ConnectionClosed") from None
        except HttpFailure:
            self._idle.put_nowait(None)
            raise

    async def _exchange(
        self,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
        path: str,
        body: bytes,
        content_type: str,
    ) -> tuple[int, bytes]:
        answered = False
        try:
            if connection is None:
                connection = await asyncio.open_connection(self.host, self.port)
                self._open.append(connection[1])
            reader, writer = connection
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.header_lines}"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status_line = await reader.readuntil(b"\r\n")
            answered = True
            headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answer = await reader.readexactly(length)
            status = int(status_line.split(b" ", 2)[1])
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ) as error:
            if connection is not None:
                connection[1].close()
            if not answered and isinstance(error, OSError | asyncio.IncompleteReadError):
                raise _Stale() from None
            raise HttpFailure(type(error).__name__) from None
        self._idle.put_nowait(connection)
        return status, answer

    async def close(self) -> None:
        for writer in self._open:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
