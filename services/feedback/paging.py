"""Offset pagination for List calls: `page_token` is the offset of the next page, opaque to clients."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from dreamforge.grpcio import InvalidArgument

T = TypeVar("T")
DEFAULT_PAGE = 50
MAX_PAGE = 200


def page_window(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, limit) of the page; InvalidArgument for a bad size or token."""
    if page_size < 0 or page_size > MAX_PAGE:
        raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE} (0 = {DEFAULT_PAGE})")
    offset = 0
    if page_token:
        try:
            offset = int(base64.urlsafe_b64decode(page_token.encode()).decode().removeprefix("o:"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("page_token is not one this service issued: pass next_page_token as is") from None
        if offset < 0:
            raise InvalidArgument("page_token is not one this service issued: pass next_page_token as is")
    return offset, page_size or DEFAULT_PAGE


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str = ""

    @classmethod
    def of(cls, rows: list[T], offset: int, limit: int) -> Page[T]:
        """`rows` fetched with limit + 1: the extra row says there is a next page."""
        more = len(rows) > limit
        token = base64.urlsafe_b64encode(f"o:{offset + limit}".encode()).decode() if more else ""
        return cls(rows[:limit], token)
