"""A fan-out of Docker events: every engine publishes, every ``/events`` client subscribes."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

Event = dict[str, Any]
#: What a subscriber's queue gets last when the bus closes (the manager stops): the stream ends.
END: Event = {}


class EventBus:
    """Publish once, deliver to every subscriber's queue; a slow subscriber loses old events, not us."""

    def __init__(self, backlog: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        #: Subscribers that are not ``/events`` clients (the dashboard): not counted as listeners.
        self._observers: set[asyncio.Queue[Event]] = set()
        self._backlog = backlog
        self._history: collections.deque[Event] = collections.deque(maxlen=backlog)

    def subscribe(self, *, listener: bool = True) -> asyncio.Queue[Event]:
        """A queue of every event from now on; ``listener=False`` for one ``/info`` should not count."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._backlog)
        (self._subscribers if listener else self._observers).add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)
        self._observers.discard(queue)

    @property
    def subscribers(self) -> int:
        """How many ``/events`` clients are listening (``/info``'s ``NEventsListener``)."""
        return len(self._subscribers)

    def history(self) -> list[Event]:
        """The most recent events, oldest first (for ``docker events --since``)."""
        return list(self._history)

    def close(self) -> None:
        """The manager stops: every subscriber gets :data:`END` (compared by identity), so streams end now.

        Without it a ``docker events`` client (or an open dashboard) would
        hold the manager's shutdown for the server's whole grace period.
        """
        for queue in (*self._subscribers, *self._observers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(END)

    def publish(self, event: Event) -> None:
        self._history.append(event)
        for queue in (*self._subscribers, *self._observers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
