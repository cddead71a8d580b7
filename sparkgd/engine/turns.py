"""Training calls of one driver process take turns on the executors.

Two training calls that run at once (two threads, ``CrossValidator(parallelism=2)``) would
otherwise fight over the task slots: each one's Spark jobs wait behind the other's resident
tasks, which hand their slots over, and both end up paying a Spark job per iteration. Instead a
call runs its iterations while it holds the turn; a call that waits for the turn submits no job.
The holder keeps the turn while nobody waits, and passes it on (first come, first served) after
:data:`SLICE` seconds when someone does, so no call starves. The turn is reentrant per thread
(a ``descend`` callback may train another model), and a call that has waited
:data:`PATIENCE` seconds goes on without it rather than risk a deadlock (e.g. a callback that
joins a thread that trains).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import Any, Hashable, Iterator

from sparkgd.engine.timeouts import PATIENCE, SLICE, TURN_POLL


class Turns:
    """A first-come, first-served turn among the training calls of this process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holder: object | None = None
        self._thread: int | None = None
        self._since = 0.0
        self._queue: collections.deque = collections.deque()

    def acquire(self, who: object) -> bool:
        """Wait for the turn; ``False`` when it was not granted in :data:`PATIENCE` seconds (go on anyway)."""
        with self._cond:
            if self._holder is who:
                return True
            if self._holder is not None and self._thread == threading.get_ident():
                return False  # nested in the holder's thread (a callback): it must not wait for itself
            self._queue.append(who)
            deadline = time.monotonic() + PATIENCE
            try:
                while self._holder is not None or self._queue[0] is not who:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, TURN_POLL))
            finally:
                self._queue.remove(who)
            self._holder, self._thread, self._since = who, threading.get_ident(), time.monotonic()
            return True

    def should_yield(self, who: object) -> bool:
        """Whether ``who`` holds the turn, another call waits, and the slice is over."""
        with self._cond:
            return self._holder is who and bool(self._queue) and time.monotonic() - self._since >= SLICE

    def release(self, who: object) -> None:
        with self._cond:
            if self._holder is who:
                self._holder = self._thread = None
                self._cond.notify_all()


TURNS = Turns()
_CURRENT = threading.local()


@contextlib.contextmanager
def training_call() -> Iterator[object | None]:
    """Hold the turn for a whole training call (block building included): yields the token that holds
    it, or ``None`` when the call goes on without it (nested in another call, or out of patience)."""
    if getattr(_CURRENT, "token", None) is not None:
        yield None  # nested in a training call of this thread (a callback): it holds the turn already
        return
    token = object()
    held = TURNS.acquire(token)
    _CURRENT.token = token if held else False  # False: this call goes on without the turn
    _CURRENT.held = {}
    try:
        yield token if held else None
    finally:
        _CURRENT.token = None
        try:
            for key in list(_CURRENT.held):
                release(key)
        finally:
            _CURRENT.held = {}
            TURNS.release(token)


def current() -> object | None:
    """The token of the training call this thread runs; ``False`` when it runs without the turn, ``None``
    outside a training call."""
    return getattr(_CURRENT, "token", None)


class Holding:
    """One iterating object's hold on the turn: the training call's when it runs in one, else its own, taken at
    its first :meth:`hold` and given back at :meth:`close`; states: not asked, held, going on without it."""

    def __init__(self) -> None:
        self._token: object | None = None  # the token holding the turn, None before the first hold
        self._held = False  # False: going on without the turn (out of patience, nested)
        self._own = False  # the token is this object's own, not a training call's

    def hold(self) -> bool:
        """Hold the turn (taken at the first call); whether another call waits and this one's slice is over."""
        if self._token is None:
            call = current()
            if call is None:
                self._token, self._own = self, True
                self._held = TURNS.acquire(self)
            else:
                self._token, self._held = call, bool(call)
            return False
        return self._held and TURNS.should_yield(self._token)

    def pass_on(self) -> None:
        """Let the waiting call have the turn, then wait for it again (or go on without it)."""
        TURNS.release(self._token)
        self._held = TURNS.acquire(self._token)

    def close(self) -> None:
        if self._own:
            TURNS.release(self)


def hold(key: Hashable, crew: Any) -> None:
    """Keep ``crew`` (block builders waiting for a plan) for the training call this thread runs, until
    :func:`take` takes it or the call ends (then it is released)."""
    _CURRENT.held[key] = crew


def take(key: Hashable) -> Any | None:
    """The crew held for ``key`` by this thread's training call (it is the caller's from now on), or ``None``."""
    return getattr(_CURRENT, "held", {}).pop(key, None)


def release(key: Hashable) -> None:
    """Let the crew held for ``key``, if any, hand its blocks to Spark and end (waits for its job)."""
    crew = take(key)
    if crew is not None:
        crew.release(raise_error=False)
