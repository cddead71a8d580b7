"""Training calls of one process take turns: first come, first served, no starvation, no self-deadlock."""

import threading
import time

from sparkgd.engine import turns
from sparkgd.engine.turns import Turns


def test_first_come_first_served_and_the_holder_yields_after_its_slice(monkeypatch):
    monkeypatch.setattr(turns, "SLICE", 0.05)
    t = Turns()
    a, b, c = object(), object(), object()
    assert t.acquire(a)
    order = []

    def wait(who, name):
        assert t.acquire(who)
        order.append(name)
        t.release(who)

    threads = [threading.Thread(target=wait, args=(b, "b")), threading.Thread(target=wait, args=(c, "c"))]
    threads[0].start()
    time.sleep(0.05)
    threads[1].start()
    time.sleep(0.1)
    assert not t.should_yield(b) and t.should_yield(a)  # someone waits and the slice is over
    assert order == []  # nobody runs while a holds the turn
    t.release(a)
    for th in threads:
        th.join(5)
    assert order == ["b", "c"]


def test_a_call_nested_in_the_holders_thread_does_not_wait_for_itself():
    t = Turns()
    outer, inner = object(), object()
    assert t.acquire(outer)
    began = time.monotonic()
    assert t.acquire(inner) is False and time.monotonic() - began < 0.1
    assert t.acquire(outer)  # reentrant for the holder itself
    t.release(outer)


def test_a_waiter_goes_on_without_the_turn_after_its_patience(monkeypatch):
    monkeypatch.setattr(turns, "PATIENCE", 0.2)
    t = Turns()
    holder = object()
    t.acquire(holder)
    got = []
    th = threading.Thread(target=lambda: got.append(t.acquire(object())))
    began = time.monotonic()
    th.start()
    th.join(5)
    assert got == [False] and 0.15 < time.monotonic() - began < 2


def test_training_call_holds_the_turn_for_the_thread_and_nested_calls_share_it():
    with turns.training_call() as token:
        assert token is not None and turns.current() is token
        with turns.training_call() as nested:
            assert nested is None and turns.current() is token
    assert turns.current() is None
