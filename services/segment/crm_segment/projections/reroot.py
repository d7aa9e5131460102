"""Keeping ``root_external_id`` right after merges and their undoing.

A customer's root is the end of its merge chain: follow ``merged_into_external_id`` (rows with
``status = 'merged'``) until a customer that is not merged, or that segment has no row for.
A merge or unmerge of customer D can only change the root of D and of the customers merged
(directly or through others) into D, so :func:`reroot` recomputes exactly that set with two
recursive CTEs, then copies the new roots into the customer table and every projection table
with one set-based ``UPDATE`` each. Running it twice, or after events that arrived out of
order, gives the same result: the roots depend only on the merge links held now.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ARRAY, Table, Text, column, delete, func, literal, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.evaluation.queue import enqueue
from crm_segment.models import (
    Customer,
    CustomerConsent,
    CustomerLoyalty,
    CustomerScore,
    CustomerTag,
    InteractionDaily,
    Order,
)

#: Every table keyed by a customer's arrival id that carries its current root.
ROOTED: list[Table] = [
    Customer.__table__,  # type: ignore[list-item]
    Order.__table__,  # type: ignore[list-item]
    InteractionDaily.__table__,  # type: ignore[list-item]
    CustomerConsent.__table__,  # type: ignore[list-item]
    CustomerTag.__table__,  # type: ignore[list-item]
    CustomerLoyalty.__table__,  # type: ignore[list-item]
]

#: ``affected``: the seeds and everyone merged into them, transitively (``UNION`` stops at a
#: customer already reached, so even a cycle left by out-of-order events terminates).
#: ``walk``: from each affected customer up its chain; a node already on the path ends it.
#: The root is the last node of the longest walk.
ROOTS_SQL = text(
    """
    WITH RECURSIVE affected(external_id) AS (
        SELECT unnest(CAST(:seeds AS text[]))
      UNION
        SELECT c.customer_external_id
        FROM segment.customer c JOIN affected a ON c.merged_into_external_id = a.external_id
        WHERE c.status = 'merged'
    ),
    walk(start, node, path) AS (
        SELECT external_id, external_id, ARRAY[external_id] FROM affected
      UNION ALL
        SELECT w.start, c.merged_into_external_id, w.path || c.merged_into_external_id
        FROM walk w JOIN segment.customer c ON c.customer_external_id = w.node
        WHERE c.status = 'merged'
          AND c.merged_into_external_id IS NOT NULL
          AND NOT c.merged_into_external_id = ANY(w.path)
    )
    SELECT DISTINCT ON (start) start AS external_id, node AS root
    FROM walk
    ORDER BY start, cardinality(path) DESC
    """
)


async def compute_roots(session: AsyncSession, seeds: Sequence[str]) -> dict[str, str]:
    """The root of every seed and of every customer merged into one, from the merge links."""
    rows = await session.execute(ROOTS_SQL, {"seeds": sorted(set(seeds))})
    return {r.external_id: r.root for r in rows}


async def reroot(session: AsyncSession, seeds: Sequence[str]) -> dict[str, str]:
    """Recompute the roots of ``seeds`` and everyone merged into them; propagate; enqueue.

    Returns the new root of every affected customer. Old and new roots are all queued (reason
    ``merge``): the evaluator exits customers that are no longer roots from their segments and
    re-evaluates the survivors; ``customer_score`` rows of customers no longer roots go.
    """
    roots = await compute_roots(session, seeds)
    if not roots:
        return {}
    ids = sorted(roots)
    old = await session.execute(
        Customer.__table__.select()
        .with_only_columns(Customer.root_external_id)
        .where(Customer.customer_external_id.in_(ids))
    )
    old_roots = set(old.scalars())
    mapping = (
        func.unnest(literal(ids, ARRAY(Text)), literal([roots[i] for i in ids], ARRAY(Text)))
        .table_valued(column("external_id"), column("root"))
        .render_derived(name="mapping")
    )
    for table in ROOTED:
        await session.execute(
            update(table)
            .where(
                table.c.customer_external_id == mapping.c.external_id,
                table.c.root_external_id.is_distinct_from(mapping.c.root),
            )
            .values(root_external_id=mapping.c.root)
        )
    merged_away = [i for i in ids if roots[i] != i]
    if merged_away:
        await session.execute(
            delete(CustomerScore).where(CustomerScore.customer_external_id.in_(merged_away))
        )
    await enqueue(session, {*ids, *old_roots, *roots.values()}, reason="merge")
    return roots
