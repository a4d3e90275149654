"""Serving the app with waitress, its loop kept from spinning on a response a worker thread is writing.

waitress's loop asks every channel, before each poll, whether it has output to send; a channel has as soon as a
worker thread put its response in the channel's buffer. But the worker sends that output itself (waitress's
``send_bytes`` is 1), and releases the GIL during the ``send``: the loop found the channel writable (a socket
nearly always is), polled, found the buffer locked by the worker and nothing to do, and went round again, every
channel asked again, until the worker had the GIL back and finished its request. With 32 connections posting
events that was ~4 rounds a request and ~250 µs of the loop's CPU a request (~70 µs without the spinning), all of
it taken from the worker threads under the one GIL; the more the workers do, the longer each spin.

Here a channel whose request is still being served counts as writable only when its worker may wait for the loop
(its output at or above waitress's high watermark: the one case where a worker blocks until the loop flushes), or
when it is to be closed. Nothing is left behind: when the request ends the worker pulls the loop's trigger (as
waitress does) and the loop sends whatever the worker could not.
"""

from __future__ import annotations

import logging
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server


class QuietChannel(HTTPChannel):
    """waitress's channel, not writable while a worker serves its request and sends its output itself."""

    def writable(self) -> bool:
        if self.will_close or self.close_when_flushed:
            return True
        pending = self.total_outbufs_len
        # at the watermark a worker may be waiting for the loop to send some (it is woken below the watermark)
        return bool(pending) and (not self.requests or pending >= self.adj.outbuf_high_watermark)


def create(app: Any, **options: Any) -> Any:
    """A waitress server for *app* (``waitress.create_server``'s options) whose channels are :class:`QuietChannel`."""
    sockets: dict[int, Any] = {}
    server = create_server(app, map=sockets, **options)
    for dispatcher in [server, *sockets.values()]:
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = QuietChannel
    return server


def serve(app: Any, **options: Any) -> None:
    """Serve *app* until interrupted, as ``waitress.serve`` does, through :func:`create`."""
    logging.basicConfig()  # as waitress.serve: a no-op when logging is set up
    server = create(app, **options)
    server.print_listen("Serving on http://{}:{}")
    server.run()


__all__ = ["QuietChannel", "create", "serve"]
