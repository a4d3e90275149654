"""Sending rendered messages over several instances of one channel at once (lanes), exactly once each.

Each lane is its own instance of the channel (its own SMTP connection, say) run by its own thread; the caller's
thread alone touches the database. Every hand-over is stamped and committed before its lane sends, and a lane has
one message at a time, so a worker that dies leaves at most one message per lane that may have reached the
provider. The outcome of the finished sends is written and committed together with the next stamps: one commit
per round, not three per message. The channel says how many lanes it wants (``Channel.concurrency``) and how many
of them may go to one destination at once (``Channel.destination_limit``, counted by ``Channel.destination``).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from ..sdk import Channel, ChannelError, OutboundMessage, SendResult

__all__ = ["Item", "Lanes", "send_all"]

#: seconds a round waits for each further send in flight to end before it records those that did
GATHER = 0.001


@dataclass(eq=False)
class Item:
    """One message to send: its outbox row, the rendered message and, once sent, the outcome."""

    msg: Any
    contact: Any
    outbound: OutboundMessage
    destination: str = ""
    result: SendResult | None = None
    error: BaseException | None = None


class _Lane:
    """One channel instance; with a thread of its own when there are several lanes."""

    def __init__(
        self,
        channel: Channel,
        done: queue.SimpleQueue[tuple[_Lane, Item]],
        threaded: bool,
        context: Callable[[], AbstractContextManager[Any]],
    ):
        self.channel = channel
        self.done = done
        self.context = context
        self.inbox: queue.SimpleQueue[Item | None] | None = queue.SimpleQueue() if threaded else None
        if self.inbox is not None:
            threading.Thread(target=self._loop, name=f"nudge-send-{channel.name}", daemon=True).start()

    def _send(self, item: Item) -> None:
        try:
            item.result = self.channel.send(item.outbound)
        except Exception as exc:  # ChannelError, or a plugin's bug: the caller's thread records either
            item.error = exc
        self.done.put((self, item))

    def _loop(self) -> None:
        assert self.inbox is not None
        with self.context():  # what a channel's send() may use (server.sdk reads) works in this thread too
            while (item := self.inbox.get()) is not None:
                self._send(item)

    def start(self, item: Item) -> None:
        if self.inbox is None:
            self._send(item)
        else:
            self.inbox.put(item)

    def stop(self) -> None:
        if self.inbox is not None:
            self.inbox.put(None)


class Lanes:
    """One lane per channel instance of *channels*, kept for as many :meth:`send` calls as the caller makes (its
    threads and connections too: a job sends batch after batch over the same ones); :meth:`close` ends them."""

    def __init__(
        self, channels: Sequence[Channel], context: Callable[[], AbstractContextManager[Any]] = nullcontext
    ) -> None:
        self.done: queue.SimpleQueue[tuple[_Lane, Item]] = queue.SimpleQueue()
        self.lanes = [_Lane(channel, self.done, len(channels) > 1, context) for channel in channels]

    def close(self) -> None:
        for lane in self.lanes:
            lane.stop()

    def send(
        self,
        items: Sequence[Item],
        stamp: Callable[[list[Item]], list[Item]],
        record: Callable[[list[Item]], None],
        limit: int = 0,
        idle: Callable[[], bool] | None = None,
    ) -> tuple[list[Item], float]:
        """Send *items* over the lanes; return those left unsent, and for how long (see :func:`send_all`).

        :param idle: a step of other work for this thread (preparing the next batch), called while every send
            in flight is still on the wire, until one ends or it answers False (nothing left to do).
        """
        done = self.done
        free = list(reversed(self.lanes))
        waiting = deque(items)
        busy: Counter[str] = Counter()
        in_flight = 0
        recorded = False  # outcomes written since the last commit
        halted = 0.0
        while in_flight or (waiting and not halted):
            starting: list[tuple[_Lane, Item]] = []
            held: list[Item] = []
            while free and waiting and not halted:
                item = waiting.popleft()
                if limit and busy[item.destination] >= limit:
                    held.append(item)  # its destination has enough sends in flight; the next one may go
                    continue
                busy[item.destination] += 1
                starting.append((free.pop(), item))
            waiting.extendleft(reversed(held))
            if not starting and recorded:
                stamp([])  # nothing more to hand over now: commit the outcomes at once
                recorded = False
            if starting:
                recorded = False
                allowed = set(map(id, stamp([item for _lane, item in starting])))
                for lane, item in starting:
                    if id(item) in allowed:
                        lane.start(item)
                        in_flight += 1
                    else:
                        busy[item.destination] -= 1
                        free.append(lane)
            if not in_flight:
                continue
            while idle is not None and done.empty():
                if not idle():
                    idle = None
            finished = [done.get()]
            try:  # the other sends in flight, if they end soon: one round (and one commit) records them all
                while len(finished) < in_flight:
                    finished.append(done.get(timeout=GATHER))
            except queue.Empty:
                pass
            for lane, item in finished:
                in_flight -= 1
                busy[item.destination] -= 1
                free.append(lane)
                if isinstance(item.error, ChannelError) and item.error.retry_after:
                    halted = max(halted, item.error.retry_after)
            record([item for _lane, item in finished])
            recorded = True
        return list(waiting), halted


def send_all(
    channels: Sequence[Channel],
    items: Sequence[Item],
    stamp: Callable[[list[Item]], list[Item]],
    record: Callable[[list[Item]], None],
    limit: int = 0,
    context: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[list[Item], float]:
    """Send *items* over one lane per channel instance of *channels*; return those left unsent, and for how long.

    :param stamp: writes and commits that these items are handed over now (with whatever *record* wrote since);
        returns those that may go (a claim taken back meanwhile does not).
    :param record: writes the outcome (``result`` or ``error``) of finished items; the next *stamp*, or the caller
        after this returns, commits it.
    :param limit: how many sends to one ``destination`` may be in flight at once; 0 for no limit.
    :param context: entered by each lane's thread around its sends (the app's context).
    :return: the items never handed over because the provider asked to wait (a ``ChannelError`` with
        ``retry_after``: sending the rest now would only be refused too), and the longest wait it asked for.
    """
    lanes = Lanes(channels, context)
    try:
        return lanes.send(items, stamp, record, limit)
    finally:
        lanes.close()
