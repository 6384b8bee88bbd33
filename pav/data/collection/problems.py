"""CollectionError and the problem list that collects every problem before raising once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_LISTED = 10  # ids listed per problem before "... and N more"


class CollectionError(ValueError):
    """An invalid collection. `problems` lists every problem found, one per line of the message."""

    def __init__(self, problems: Sequence[str], root: str | Path | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.root: Path | None = None if root is None else Path(root)
        super().__init__(_format_problems(self.problems, self.root))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.root))


def _format_problems(problems: Sequence[str], root: Path | None) -> str:
    n = len(problems)
    where = f" ROOT={root}" if root is not None else ""
    head = f"invalid collection{where} ({n} problem{'' if n == 1 else 's'}"
    head += ", paths relative to ROOT):" if root is not None else "):"
    return "\n".join([head, *(f"  - {p}" for p in problems)])


class _Problems:
    """Collects "<file>: <message>" lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _raise_value_error(title: str, problems: _Problems) -> None:
    if problems:
        raise ValueError("\n".join([title, *(f"  - {p}" for p in problems.items)]))


def _list_some(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return shown + (f" ... and {rest} more" if rest > 0 else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
