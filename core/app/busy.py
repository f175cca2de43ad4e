"""How a front end shows that an operation waits on a remote system.

Operations that ask connectors (`im.app.connectors`, `im.app.oncall`) take `busy`, a context
manager around each wait: the CLI passes its spinner, other front ends what they show, or
nothing (`unseen`, the default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

__all__ = ["Busy", "unseen"]


class Busy(Protocol):
    """How a front end shows that an operation waits on a remote system: a context manager
    around the wait, given what is waited for and, when known, how many steps it takes. It
    yields a function that counts one step done."""

    def __call__(self, text: str, *, total: int | None = None
                 ) -> AbstractContextManager[Callable[[], None]]: ...


@contextmanager
def unseen(text: str, *, total: int | None = None) -> Iterator[Callable[[], None]]:
    """The default Busy: the wait is not shown."""
    yield lambda: None
