"""ASGI middleware of the service: the request-body limit (the metrics middleware is
``slipcast.live.metrics.Measured``)."""

from __future__ import annotations


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413 before the app reads them: at once
    when the declared length is over, and for a body sent in chunks without a length, as soon as
    the chunks pass the limit (they are held, at most ``limit`` bytes, and then handed on)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                return await self._refuse(send)
            return await self.app(scope, receive, send)
        held, size = [], 0
        while True:
            message = await receive()
            held.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._refuse(send)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay():
            return held.pop(0) if held else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send):
        body = b'{"detail":"request body too large"}'
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
