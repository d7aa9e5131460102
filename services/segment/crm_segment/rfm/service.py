"""RFM: the batch over every customer, and the summary by group (docs/segment/rfm.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.lifecycle.stages import LifecycleRules
from crm_segment.rfm import repository
from crm_segment.rfm.groups import GROUPS
from crm_segment.rfm.repository import Window, WriteResult
from crm_segment.rfm.schemas import GroupSummary, RfmSummary
from crm_segment.rfm.scoring import METRICS, Cuts, lower_is_better

#: The "top customers" of the summary's revenue concentration.
TOP_SHARE = 0.2


def window(as_of: date | None, window_days: int | None, now: datetime) -> Window:
    """The window asked for, with the defaults (today UTC, ``rfm_window_days``)."""
    return Window(
        as_of=as_of or now.astimezone(UTC).date(),
        days=window_days or settings.rfm_window_days,
    )


def _quantile_cuts(stats: dict[str, dict[str, dict[str, int | None]]]) -> Cuts:
    """The batch's cuts: per score 2-5 the least good value that earned it."""
    edge = {m: "max" if lower_is_better(m) else "min" for m in METRICS}
    return Cuts(**{m: tuple(stats[m][str(s)][edge[m]] for s in range(2, 6)) for m in METRICS})


#: The daily run catches up incrementally over at most this many days since the last batch;
#: beyond that (the worker was down) it is a full run.
INCREMENTAL_MAX_DAYS = 7


async def _incremental_window(
    session: AsyncSession, win: Window, now: datetime
) -> tuple[Window, Cuts] | None:
    """The previous batch's window and cuts when ``win`` can be reached incrementally from it:
    a batch ran with the same window length, ``win`` ends at most ``INCREMENTAL_MAX_DAYS``
    after it and no earlier than today (the re-evaluation queue's refreshes are as of today,
    so no stored row is newer than ``win``)."""
    stored = await repository.load_boundaries(session)
    if stored is None or stored.window_days != win.days:
        return None
    ahead = (win.as_of - stored.as_of).days
    if not 0 <= ahead <= INCREMENTAL_MAX_DAYS or win.as_of < now.astimezone(UTC).date():
        return None
    return Window(as_of=stored.as_of, days=win.days), Cuts.from_boundaries(stored.boundaries)


async def recompute(
    session: AsyncSession,
    *,
    as_of: date | None,
    window_days: int | None,
    now: datetime,
    full: bool = True,
) -> dict[str, Any]:
    """Score every customer, store the boundaries, restage everybody, refresh CLV and value
    scores, and queue the customers whose group or stage changed; the job's result.

    ``full=False`` (the scheduled daily run) is incremental when it can be (see
    :func:`_incremental_window`): the orders that left the window are taken out of their
    customers' stored metrics, the customers whose inputs changed and are still queued are
    recomputed from their orders, then every stored row is scored against the new quantiles
    and restaged, without reading the orders again. A full run aggregates every order.
    """
    win = window(as_of, window_days, now)
    fixed = Cuts.from_settings(settings) if settings.rfm_scoring == "thresholds" else None
    rules = LifecycleRules.from_settings(settings)
    await repository.set_work_mem(session, settings.rfm_batch_work_mem)
    previous = None if full else await _incremental_window(session, win, now)
    if previous is None:
        result = await repository.write_scores(
            session, window=win, now=now, rules=rules, cuts=fixed, enqueue=True
        )
        recomputed, adjusted = result.scored, 0
    else:
        last, last_cuts = previous
        ids = await repository.changed_since(session, last, win)
        adjusted = await repository.drop_left_orders(
            session, previous=last, window=win, now=now, skip=ids
        )
        result = WriteResult()
        if ids:
            result = await repository.write_scores(
                session,
                window=win,
                now=now,
                rules=rules,
                cuts=fixed or last_cuts,
                ids=ids,
                enqueue=True,
            )
        result.scored, result.stats = await repository.current_stats(session, win.as_of, fixed)
        rescored = await repository.rescore(
            session, window=win, now=now, rules=rules, cuts=fixed or _quantile_cuts(result.stats)
        )
        result.written += rescored.written
        result.enqueued += rescored.enqueued
        recomputed = len(ids)
    cuts = fixed or _quantile_cuts(result.stats)
    boundaries = {
        m: {
            "better": "lower" if lower_is_better(m) else "higher",
            "cuts": list(cuts.of(m)),
            "scores": result.stats[m],
        }
        for m in METRICS
    }
    await repository.save_boundaries(
        session,
        window=win,
        method=settings.rfm_scoring,
        boundaries=boundaries,
        customers=result.scored,
        now=now,
    )
    # imported here: CLV needs numpy/scipy, which the API process (that imports this module
    # for its endpoints) should not load
    from crm_segment.clv import service as clv_service
    from crm_segment.value import service as value_service

    predicted = await clv_service.predict_customers(session, None, now)
    valued = await value_service.score_customers(session, None, now)
    return {
        "as_of": win.as_of.isoformat(),
        "window_days": win.days,
        "method": settings.rfm_scoring,
        "full": previous is None,
        "customers_scored": result.scored,
        "customers_recomputed": recomputed,
        "customers_adjusted": adjusted,
        "rows_written": result.written,
        "rows_deleted": result.deleted,
        "enqueued": result.enqueued,
        "clv_predicted": predicted,
        "value_scored": valued,
    }


async def current_cuts(session: AsyncSession) -> tuple[Cuts, int]:
    """Cuts and window to re-score one customer with: the last batch's boundaries, or the
    fixed thresholds when the shop uses them or no batch has run yet; the last batch's window
    whenever there was one (so that every row is for the same window)."""
    stored = await repository.load_boundaries(session)
    if stored is None:
        return Cuts.from_settings(settings), settings.rfm_window_days
    if settings.rfm_scoring == "thresholds":
        return Cuts.from_settings(settings), stored.window_days
    return Cuts.from_boundaries(stored.boundaries), stored.window_days


async def summary(session: AsyncSession) -> RfmSummary:
    """Customers, revenue and averages per group, and the revenue share of the top 20 %."""
    stored = await repository.load_boundaries(session)
    total, top = await repository.top_revenue(session, TOP_SHARE)
    rows = {row.group: row for row in await repository.group_rows(session)}
    groups = []
    for name in GROUPS:
        row = rows.get(name)
        revenue = int(row.revenue_minor) if row else 0
        groups.append(
            GroupSummary(
                group=name,
                customers=row.customers if row else 0,
                revenue_minor=revenue,
                revenue_share=revenue / total if total else 0.0,
                **{
                    k: getattr(row, k) if row else None
                    for k in (
                        "avg_recency_days",
                        "avg_frequency",
                        "avg_monetary_minor",
                        "avg_r",
                        "avg_f",
                        "avg_m",
                    )
                },
            )
        )
    return RfmSummary(
        as_of=stored.as_of if stored else None,
        window_days=stored.window_days if stored else None,
        method=stored.method if stored else None,
        customers=sum(g.customers for g in groups),
        revenue_minor=total,
        top_20_percent_revenue_share=top / total if total else 0.0,
        groups=groups,
    )
