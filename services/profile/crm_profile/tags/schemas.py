"""Request and response models of the tags API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

#: 1-64 characters of ``a-z 0-9 _ - :`` (``vip``, ``b2b``, ``campaign:spring-26``).
TAG_PATTERN = r"^[a-z0-9_:\-]+$"
TagName = Annotated[str, Field(min_length=1, max_length=64, pattern=TAG_PATTERN)]
#: ``manual``: set through this API; ``segment``: derived by the segment service's tag rules.
Origin = Literal["manual", "segment"]


class TagItem(BaseModel):
    """A tag of a customer (or of any customer of its merge group) and where it came from."""

    tag: str
    origin: Origin
    created_at: datetime = Field(description="When the tag was first added in the merge group")


class TagList(BaseModel):
    """Tags of a merge group by name; ``next_cursor`` is always null (one page)."""

    items: list[TagItem]
    next_cursor: str | None = None
