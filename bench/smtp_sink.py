"""A minimal SMTP sink for the benchmarks: accepts every message, counts them, keeps nothing but (optionally)
a line per recipient accepted.

Run as its own process (``python -m bench.smtp_sink PORT [LOG]``) so that the server does not share the
sender's interpreter; it prints ``ready`` once listening and the count of messages received on SIGTERM. With
LOG, each accepted DATA appends ``time recipient subject`` per recipient to that file (time: when the DATA
ended, just before the 250), which ``bench_e2e`` reads.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import IO

received = 0


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: IO[str] | None = None) -> None:
    """One SMTP session: EHLO, MAIL, RCPT, DATA (until the lone dot), RSET, NOOP and QUIT."""
    global received
    writer.write(b"220 sink ESMTP\r\n")
    rcpts: list[str] = []
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n")
            elif verb == b"RCPT" and out is not None:
                rcpts.append(line.decode().split(":", 1)[1].strip().strip("<>").split(">")[0])
                writer.write(b"250 ok\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                subject = ""
                while (data := await reader.readline()) not in (b".\r\n", b""):
                    if out is not None and not subject and data[:8].lower() == b"subject:":
                        subject = data[8:].decode().strip()
                received += 1
                if out is not None:
                    at = time.time()
                    out.writelines(f"{at:.6f} {rcpt} {subject}\n" for rcpt in rcpts)
                    out.flush()
                rcpts = []
                writer.write(b"250 accepted\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                if verb in (b"RSET", b"MAIL"):
                    rcpts = []
                writer.write(b"250 ok\r\n")
            await writer.drain()
    finally:
        writer.close()


async def main(port: int, log: str | None = None) -> None:
    out = open(log, "a") if log else None  # noqa: SIM115 (open for the server's whole life)
    server = await asyncio.start_server(lambda r, w: session(r, w, out), "127.0.0.1", port, backlog=256)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        async with server:
            await stop.wait()
    finally:
        if out is not None:
            out.close()
    print(received, flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
