"""The group of every one of the 25 R×F cells, in SQL and in Python, against the spec."""

from __future__ import annotations

from sqlalchemy import Integer, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.rfm.groups import group_expr, group_of

# Rows R5..R1, columns F1..F5, written from the spec's definitions.
TABLE = {
    5: ["new_customer", "potential_loyalist", "potential_loyalist", "champions", "champions"],
    4: ["promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"],
    3: ["about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"],
    2: ["hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"],
    1: ["hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"],
}
EXPECTED = {(r, f): TABLE[r][f - 1] for r in TABLE for f in range(1, 6)}


class TestGroups:
    async def test_sql_covers_all_25_cells(self, session: AsyncSession) -> None:
        r = func.generate_series(1, 5).table_valued("v").render_derived(name="r")
        f = func.generate_series(1, 5).table_valued("v").render_derived(name="f")
        stmt = select(
            r.c.v, f.c.v, group_expr(r.c.v.cast(Integer), f.c.v.cast(Integer))
        ).select_from(r.join(f, true()))
        got = {(rv, fv): g for rv, fv, g in (await session.execute(stmt)).all()}
        assert got == EXPECTED

    async def test_null_scores_have_no_group(self, session: AsyncSession) -> None:
        stmt = select(group_expr(func.nullif(1, 1), func.nullif(3, 2)))
        assert (await session.execute(stmt)).scalar_one() is None

    def test_python_mapping(self) -> None:
        assert {cell: group_of(*cell) for cell in EXPECTED} == EXPECTED
