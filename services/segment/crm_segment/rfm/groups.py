"""The ten named RFM groups, defined on the R and F scores (M does not name a group).

Every one of the 25 R×F cells belongs to exactly one group (checked at import).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, literal

#: group -> (R scores, F scores), as in the spec.
GROUPS: dict[str, tuple[range, range]] = {
    "champions": (range(5, 6), range(4, 6)),
    "loyal": (range(3, 5), range(4, 6)),
    "potential_loyalist": (range(4, 6), range(2, 4)),
    "new_customer": (range(5, 6), range(1, 2)),
    "promising": (range(4, 5), range(1, 2)),
    "need_attention": (range(3, 4), range(3, 4)),
    "about_to_sleep": (range(3, 4), range(1, 3)),
    "at_risk": (range(1, 3), range(3, 5)),
    "cannot_lose": (range(1, 3), range(5, 6)),
    "hibernating": (range(1, 3), range(1, 3)),
}

#: (r, f) -> group, for all 25 cells.
CELLS: dict[tuple[int, int], str] = {
    (r, f): name for name, (rs, fs) in GROUPS.items() for r in rs for f in fs
}
if sorted(CELLS) != [(r, f) for r in range(1, 6) for f in range(1, 6)] or len(CELLS) != sum(
    len(rs) * len(fs) for rs, fs in GROUPS.values()
):  # pragma: no cover - a wrong edit of GROUPS fails at import, not in production
    raise RuntimeError("RFM groups must cover each of the 25 R×F cells exactly once")


def group_of(r: int, f: int) -> str:
    """The group of an (R, F) cell."""
    return CELLS[(r, f)]


def group_expr(r: ColumnElement[int], f: ColumnElement[int]) -> ColumnElement[str]:
    """SQL: the group of the (``r``, ``f``) cell; NULL when either score is NULL."""
    whens = [
        (and_(r.between(rs.start, rs.stop - 1), f.between(fs.start, fs.stop - 1)), literal(name))
        for name, (rs, fs) in GROUPS.items()
    ]
    return case(*whens, else_=literal(None))
