"""A minimal SMTP sink for the send benchmark: accepts every message, counts them, keeps nothing.

Run as its own process (``python -m bench.smtp_sink PORT``) so that the server does not share the sender's
interpreter; it prints ``ready`` once listening and the count of messages received on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

received = 0


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One SMTP session: EHLO, MAIL, RCPT, DATA (until the lone dot), RSET, NOOP and QUIT."""
    global received
    writer.write(b"220 sink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
                received += 1
                writer.write(b"250 accepted\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                writer.write(b"250 ok\r\n")
            await writer.drain()
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=256)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    print(received, flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
