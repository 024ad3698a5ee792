"""What a view declares about itself, as an attribute the app reads at startup (the
bearer check, the rate limiter, the contract): one decorator shape for every such fact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

View = TypeVar("View", bound=Callable[..., Any])


def declaring(attribute: str, value: str) -> Callable[[View], View]:
    """A decorator that sets `attribute` on the view and returns the view unchanged."""

    def declare(view: View) -> View:
        setattr(view, attribute, value)
        return view

    return declare


def declared(view: Callable[..., Any] | None, attribute: str) -> str | None:
    value = getattr(view, attribute, None)
    return value if isinstance(value, str) else None
