"""Sentences respaldo words itself, kept with the message they were made from.

A :class:`Phrase` is the English text (a ``str``: the CLI, the API, the logs and the
catalog use it as they always did) that also remembers its message (``N_``-marked for the
catalogs, ``{name}`` where a value goes) and the values put into it. An interface that
speaks another language (the page) says it in that language: the message translated,
each value put back as given (an engine's error, a name, a time stay as written), or
said in turn when it is a phrase too. Any text made from a phrase by formatting or
concatenation is plain text again: the page then recognises it by its message
(:mod:`respaldo.reasons`), or shows it as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name)
    """Marks a message for extraction (``make messages``: pybabel reads calls through
    this name); it is translated where it is shown."""
    return message


QuantityKind = Literal["bytes", "share", "minute"]


class Quantity(str):
    """A value of a phrase that each language writes its own way: a number of bytes
    (``amount`` an int), a share (a float, 1.0 for all), a time to the minute in UTC (an
    aware datetime). Its text is the English one the CLI, the API and the logs have
    always shown; a page in another language formats ``amount`` for its locale
    (:meth:`respaldo.web.i18n.Formatter.quantity`)."""

    kind: QuantityKind
    amount: int | float | datetime

    def __new__(cls, text: str, kind: QuantityKind, amount: int | float | datetime) -> Quantity:
        self = super().__new__(cls, text)
        self.kind = kind
        self.amount = amount
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Quantity, (str(self), self.kind, self.amount))


def minute(at: datetime) -> Quantity:
    """``at`` (in UTC) to the minute, as a phrase's value: "2026-12-06 05:48" in English,
    written for its locale by a page in another language. Its phrase says "UTC"."""
    return Quantity(f"{at:%Y-%m-%d %H:%M}", "minute", at)


class Phrase(str):
    """``message.format(**values)``, knowing ``message`` and ``values``."""

    message: str
    values: dict[str, str]

    def __new__(cls, message: str, /, **values: object) -> Phrase:
        # Values are kept as text (a phrase stays a phrase): what a message shows of a
        # number or a time is decided where it is made, once for every language.
        kept = {
            name: value if isinstance(value, str) else str(value) for name, value in values.items()
        }
        self = super().__new__(cls, message.format(**kept))
        self.message = message
        self.values = kept
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # str's own would rebuild it from the text alone (message and values lost).
        return (_rebuild, (self.message, self.values))


def _rebuild(message: str, values: dict[str, str]) -> Phrase:
    return Phrase(message, **values)


def counted(count: int, one: str, other: str, /, **values: object) -> Phrase:
    """``count`` things, said with its noun (and verb) agreeing: ``one`` when it is 1,
    else ``other``; both messages name it ``{count}`` ("1 backup deleted", "2 backups
    deleted", "0 backups deleted"). Mark both with ``N_`` where the message is
    translated: Spanish agrees where English does (singular for 1 only, plural for 0
    too), so the chosen message's translation agrees as well; the one plural form
    English lacks (Babel's "1 000 000 de copias") is not worth a second plural rule."""
    return Phrase(one if count == 1 else other, count=count, **values)


def days_said(days: float) -> Phrase:
    """``days`` with its noun: "1 day" (a setting of one day said "1 days"), "3 days",
    "1.5 days". A phrase, so that a sentence's values are said in the page's language too;
    respaldo.reasons has both messages, for the stored text."""
    return Phrase(N_("{count} day") if days == 1 else N_("{count} days"), count=f"{days:g}")


def recorded(text: str) -> str:
    """``text`` (what a job or a check recorded, in English) as a value to be said in
    another language: where respaldo worded it, it is recognised by its message
    (:mod:`respaldo.reasons`), else put back as written. Its English is ``text`` itself.
    A phrase stays as it is; a plain value (a name) is better left plain, as given."""
    return text if isinstance(text, Phrase) else Phrase("{text}", text=text)


def joined(parts: Iterable[str], separator: str = "; ") -> str:
    """The non-empty ``parts`` joined by ``separator``, as one phrase whose parts are
    each said in turn ("the last attempt failed …; the newest full backup …")."""
    kept = [part for part in parts if part]
    if len(kept) == 1:
        return kept[0]
    names = [f"part{i}" for i in range(len(kept))]
    message = separator.join(f"{{{name}}}" for name in names)
    return Phrase(message, **dict(zip(names, kept, strict=True)))
