"""A time budget for one check: SymPy and mpmath are pure Python, so an alarm interrupts them."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class OverBudget(BaseException):
    """The check took longer than its budget. A ``BaseException``, as ``KeyboardInterrupt``
    is, so that no ``except Exception`` on the way (SymPy has many) swallows it."""


@contextmanager
def budget(seconds: float | None) -> Iterator[None]:
    """Raise :class:`OverBudget` inside the block once ``seconds`` have passed.

    Only in the main thread of a process that has ``SIGALRM`` (elsewhere the block runs
    unbounded); an enclosing budget is suspended and restored afterwards.
    """
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    message = f"over the time budget of {seconds:g} s"
    expired: list[bool] = []

    def expire(signum: int, frame: object) -> None:
        expired.append(True)
        raise OverBudget(message)

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, outer)
    if expired:  # the alarm's exception was swallowed on the way (e.g. in a finaliser)
        raise OverBudget(message)
