"""When resident tasks are tried: the start policy and the quiet wait, on a fake clock."""

import math

import pytest

from sparkgd.engine import timeouts
from sparkgd.engine.starts import MAX_RETRY_GAP, QuietBudget, StartPolicy


def test_the_first_iteration_tries_and_busy_slots_back_off_1_2_4_up_to_the_cap():
    p = StartPolicy()
    assert p.due(1)
    tries, call = [], 1
    for _ in range(9):
        p.busy(call)
        call = int(p.next_try)
        tries.append(call)
    gaps = [b - a for a, b in zip([1] + tries, tries)]
    assert gaps == [1, 2, 4, 8, 16, 32, 64, 64, 64] and MAX_RETRY_GAP == 64
    p.started()
    p.busy(100)
    assert p.next_try == 101  # a start resets the busy back-off


def test_failed_starts_back_off_2_4_and_keep_their_own_gap():
    p = StartPolicy()
    assert [p.failed(c) for c in (1, 3, 7)] == [3, 7, 15]
    p.busy(15)
    assert p.next_try == 16 and p.gap == 16  # busy slots do not reset the failure back-off
    p.started()
    assert p.failed(20) == 36


def test_hand_over_yield_and_off():
    p = StartPolicy()
    p.failed(1)
    p.handed_over(2)
    assert not p.due(2) and p.due(3)
    p.failed(3)
    p.yielded(4)
    assert p.due(4)
    p.off()
    assert p.next_try == math.inf and not p.due(10**9)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, dt):
        self.now += dt


def test_the_quiet_wait_returns_once_nothing_ran_for_the_quiet_time():
    clock = FakeClock()
    budget = QuietBudget(1.0, clock, clock.sleep)
    ends = iter([True] * 5)  # another job runs for 5 polls, then nothing does
    assert budget.wait_quiet(lambda: next(ends, False))
    assert clock.now == pytest.approx(5 * timeouts.QUIET_POLL + timeouts.QUIET, abs=1.5 * timeouts.QUIET_POLL)
    assert budget.left == pytest.approx(1.0 - clock.now)


def test_the_quiet_wait_spends_its_budget_once_per_call_in_all():
    clock = FakeClock()
    budget = QuietBudget(1.0, clock, clock.sleep)
    assert not budget.wait_quiet(lambda: True)  # always busy: gives up at the deadline
    assert 1.0 <= clock.now <= 1.0 + 2 * timeouts.QUIET_POLL and budget.left <= 0
    before = clock.now
    assert not budget.wait_quiet(lambda: True)  # nothing left: one look, no more waiting
    assert clock.now - before <= timeouts.QUIET_POLL + 1e-12
    before = clock.now
    assert budget.wait_quiet(lambda: False)  # nothing runs now: go ahead, after one poll
    assert clock.now - before <= timeouts.QUIET_POLL + 1e-12
