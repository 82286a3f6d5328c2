"""The project's one error type for a bad value, carrying where the value sits.

Domain code (importers, the forecast path) raises ``FieldError`` with the value's location;
the caller turns it into its own shape (an import rejection, an HTTP 422) without parsing a
message.
"""

from __future__ import annotations


class FieldError(ValueError):
    """A value that cannot be used. ``loc`` names where it sits, outermost first (for a
    request: ``("body", "tickets", 3, "created_at")``; for an import record: ``("Story Points",)``)."""

    def __init__(self, loc: tuple[str | int, ...] | list[str | int] | str, message: str):
        self.loc: tuple[str | int, ...] = (loc,) if isinstance(loc, str) else tuple(loc)
        self.message = message
        super().__init__(f"{'.'.join(map(str, self.loc)) or '-'}: {message}")

    @property
    def field(self) -> str:
        """The location as one dotted name ("-" when it names none)."""
        return ".".join(map(str, self.loc)) or "-"

    def within(self, *outer: str | int) -> FieldError:
        """The same error located inside ``outer`` (a request inside a batch, say)."""
        return FieldError((*outer, *self.loc), self.message)
