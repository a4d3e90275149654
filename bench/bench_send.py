"""Email delivered by the outbox to a local SMTP sink, next to plain ``smtplib`` sending prebuilt messages.

Issue #12 point 3: the email channel delivers >= 0.8x plain ``smtplib`` over the same number of connections, in the
same run, to the same sink; and one worker with several connections reaches >= 800 msg/s to one relay. The sink
(:mod:`bench.smtp_sink`) runs in its own process. The figure is the outbox's whole path (claim, send-time policy,
render, stamp, SMTP, record), the way a worker runs a send job; the baseline only writes prebuilt bytes. A second
figure is the email channel alone (``EmailChannel.send`` of messages rendered before the clock starts: headers,
footers, MIME bytes, SMTP), so that the table shows which side of the channel the difference is on.
Run: .venv/bin/python bench/bench_send.py [--messages 20000] [--connections 4]
"""

from __future__ import annotations

import argparse
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench.common import bench_app
from bench.table import Row, ratio_at_least, render
from server.db import get_session
from server.engine.jobs import deliver_messages
from server.models import Message, MessageStatus
from tests.helpers import pending_emails

T = TypeVar("T")

#: outbox rows per send job, as the scheduler hands them out
JOB = 1000


class Sink:
    """:mod:`bench.smtp_sink` in a child process, on a free port."""

    def __init__(self) -> None:
        from tests.servers import free_port

        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.smtp_sink", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        """Stop the sink; return how many messages it received."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return int(out.split()[-1])


def smtplib_rate(port: int, n: int, connections: int) -> tuple[float, float]:
    """Plain smtplib: *n* prebuilt messages over *connections* connections (one thread each); messages/s by the
    clock and by this process's CPU time."""
    data = []
    for i in range(n):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "news@acme.example", f"c{i}@example.com", "Welcome!"
        msg.set_content("Hello there,\n\nthanks for signing up.\n" * 3)
        data.append((f"c{i}@example.com", msg.as_bytes()))

    def worker(part: list[tuple[str, bytes]]) -> None:
        conn = smtplib.SMTP("127.0.0.1", port)
        conn.ehlo()
        for to, body in part:
            conn.sendmail("news@acme.example", [to], body)
        conn.quit()

    return _in_threads(worker, data, connections)


def nudge_rate(port: int, n: int, connections: int) -> tuple[float, float]:
    """The outbox: *n* pending marketing emails delivered by send jobs of :data:`JOB` rows; messages/s by the clock
    and by this process's CPU time (every thread: the job's and its connections')."""
    with bench_app(**_settings(port, connections)) as app, app.app_context():
        session = get_session()
        todo = pending_emails(session, [f"c{i}@example.com" for i in range(n)])
        start, cpu = time.perf_counter(), time.process_time()
        for first in range(0, n, JOB):
            deliver_messages(todo[first : first + JOB])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        sent = session.scalar(select(func.count(Message.id)).where(Message.status == MessageStatus.SENT.value))
        assert sent == n, f"{sent} of {n} sent"
    return n / elapsed, n / cpu


def channel_rate(port: int, n: int, connections: int) -> tuple[float, float]:
    """The email channel alone: *n* messages rendered before the clock starts (as smtplib's are built before it),
    sent by ``EmailChannel.send`` (headers, footers, MIME bytes, SMTP) through *connections* channels, a thread
    each; messages/s by the clock and by this process's CPU time. What the outbox adds around it is the difference
    from :func:`nudge_rate`."""
    from server.engine.render import render
    from server.sdk import OutboundMessage

    with bench_app(**_settings(port, connections)) as app, app.app_context():
        messages = []
        for i in range(n):
            to, url = f"c{i}@example.com", f"https://nudge.example/u/token-{i}"
            contact = {"email": to, "first_name": f"First{i}"}
            parts = render("welcome", channel="email", contact=contact, data={"event": {}, "unsubscribe_url": url})
            messages.append(
                OutboundMessage(
                    key=f"broadcast:1:{i}",
                    channel="email",
                    template="welcome",
                    to=to,
                    subject=parts.get("subject", ""),
                    text=parts.get("txt", ""),
                    html=parts.get("html") or None,
                    parts=parts,
                    unsubscribe_url=url,
                )
            )
        plugins = app.extensions["nudge.plugins"]

        def worker(part: list[OutboundMessage]) -> None:
            channel = plugins.channel("email", app.config)
            with channel.batch():
                for message in part:
                    channel.send(message)

        return _in_threads(worker, messages, connections)


def _in_threads(worker: Callable[[list[T]], None], items: list[T], connections: int) -> tuple[float, float]:
    """*items* shared out over *connections* threads running *worker*; items/s by the clock and by this process's
    CPU time (every thread's), from the first start to the last end."""
    threads = [threading.Thread(target=worker, args=(items[k::connections],)) for k in range(connections)]
    start, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(items) / (time.perf_counter() - start), len(items) / (time.process_time() - cpu)


def _settings(port: int, connections: int) -> dict[str, object]:
    return {
        "SMTP_URL": f"smtp://127.0.0.1:{port}",
        "MAIL_FROM": "Acme <news@acme.example>",
        "POSTAL_ADDRESS": "1 Main St, Springfield",
        "SMTP_CONNECTIONS": connections,
    }


def measure(n: int, connections: int) -> list[Row]:
    sink = Sink()
    try:
        base, base_cpu = smtplib_rate(sink.port, n, connections)
        figure, figure_cpu = nudge_rate(sink.port, n, connections)
        alone, alone_cpu = channel_rate(sink.port, n, connections)
    finally:
        received = sink.stop()
    assert received == 3 * n, f"the sink received {received} messages, expected {3 * n}"
    path = f"email to a local SMTP sink, {n:,} recipients, {connections} connection(s)"
    rows = [ratio_at_least(path, figure, "msg/s", base, "plain smtplib, prebuilt", 0.8)]
    # by CPU time (what a busy machine gives each side varies from run to run; the CPU a message costs does not)
    rows.append(ratio_at_least(f"{path}, CPU time", figure_cpu, "msg/s", base_cpu, "plain smtplib, prebuilt", 0.8))
    # where the difference is: the channel's own sending (headers, footers, MIME, SMTP) without the outbox around it
    what = f"email channel alone (EmailChannel.send, rendered messages), {n:,} recipients, {connections} connection(s)"
    rows.append(ratio_at_least(what, alone, "msg/s", base, "plain smtplib, prebuilt", 0.8))
    rows.append(ratio_at_least(f"{what}, CPU time", alone_cpu, "msg/s", base_cpu, "plain smtplib, prebuilt", 0.8))
    rows.append(
        Row(
            f"email, one worker and one relay, {connections} connection(s)",
            figure,
            "msg/s",
            base,
            "plain smtplib, prebuilt",
            ">= 800 msg/s",
            figure >= 800,
        )
    )
    return rows


def rows(full: bool) -> list[Row]:
    return measure(20_000 if full else 2_000, 4)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats

        sink = Sink()
        try:
            cProfile.run("nudge_rate(sink.port, args.messages, args.connections)", "/tmp/ps/send.prof")
        finally:
            sink.stop()
        pstats.Stats("/tmp/ps/send.prof").sort_stats("cumulative").print_stats(45)
    else:
        print(render(measure(args.messages, args.connections)))
