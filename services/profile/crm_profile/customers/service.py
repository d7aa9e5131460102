"""Business rules of customers: create, update, read, resolve through merges."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import ApiKeyPrincipal, CustomerPrincipal
from crm_common.repository import Page
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.schemas import PROFILE_FIELDS, CustomerFields, CustomerRead, TagRead
from crm_profile.events import CUSTOMER_CREATED, CUSTOMER_UPDATED, CustomerV1
from crm_profile.models import Customer, outbox

Actor = ApiKeyPrincipal | CustomerPrincipal | None
MAX_CHAIN = 64


async def resolve(session: AsyncSession, external_id: str) -> Customer:
    """The customer behind ``external_id``, following merges to the survivor; 404 when unknown."""
    repo = CustomerRepository(session)
    customer = await repo.by_external_id(external_id)
    if customer is None or customer.status == "erased":
        raise CustomerNotFound(f"no customer with external id {external_id!r}")
    for _ in range(MAX_CHAIN):
        if customer.merged_into_id is None:
            return customer
        survivor = await repo.by_id(customer.merged_into_id)
        if survivor is None:  # pragma: no cover - the foreign key forbids it
            break
        customer = survivor
    raise CustomerNotFound(f"no customer with external id {external_id!r}")


async def writable(session: AsyncSession, external_id: str) -> Customer:
    """The customer itself, locked for update; 409 when it was merged into another."""
    customer = await CustomerRepository(session).by_external_id(external_id, for_update=True)
    if customer is None or customer.status == "erased":
        raise CustomerNotFound(f"no customer with external id {external_id!r}")
    if customer.merged_into_id is not None:
        survivor = await resolve(session, external_id)
        raise CustomerMerged(
            f"customer {external_id!r} was merged into {survivor.external_id!r}; update that one"
        )
    return customer


def payload(customer: Customer, changed: list[str]) -> CustomerV1:
    """The ``crm.profile.customer.*`` payload of ``customer``."""
    return CustomerV1(
        customer_id=str(customer.id),
        customer_external_id=customer.external_id,
        changed_fields=changed,
        **{f: getattr(customer, f) for f in PROFILE_FIELDS if f != "attributes"},
        attributes=customer.attributes or {},
    )


def _apply(customer: Customer, values: dict[str, Any]) -> list[str]:
    """Set ``values`` on ``customer``; the names of the fields that actually changed."""
    changed = []
    for field, value in values.items():
        if field == "attributes" and value is None:
            value = {}
        if getattr(customer, field) != value:
            setattr(customer, field, value)
            changed.append(field)
    return changed


async def ensure(session: AsyncSession, external_id: str) -> Customer:
    """The customer behind ``external_id`` (its survivor if merged), created bare when unknown.

    Behaviour events and orders may arrive before the shop's backend upserts the customer; the
    bare customer they create is filled in by a later ``PUT`` (and announced as created now).
    """
    repo = CustomerRepository(session)
    existing = await repo.by_external_id(external_id)
    if existing is not None and existing.status != "erased":
        return await resolve(session, external_id)
    stmt = (
        pg_insert(Customer)
        .values(id=uuid.uuid4(), external_id=external_id, status="active", attributes={})
        .on_conflict_do_nothing(index_elements=[Customer.external_id])
        .returning(Customer.id)
    )
    if existing is None and (await session.execute(stmt)).first() is not None:
        customer = await repo.by_external_id(external_id)
        assert customer is not None
        await outbox.enqueue(
            session, CUSTOMER_CREATED.envelope(payload(customer, []), subject_id=external_id)
        )
        return customer
    if existing is not None:  # erased earlier: the id starts over as a new customer
        customer, _ = await upsert(session, external_id, CustomerFields(), None)
        return customer
    return await resolve(session, external_id)  # created concurrently by another request


async def upsert(
    session: AsyncSession, external_id: str, body: CustomerFields, actor: Actor
) -> tuple[Customer, bool]:
    """``PUT``: create the customer or replace its fields; ``True`` when created."""
    repo = CustomerRepository(session)
    values = {f: getattr(body, f) for f in PROFILE_FIELDS}
    existing = await repo.by_external_id(external_id, for_update=True)
    if existing is None or existing.status == "erased":
        if existing is not None:  # an erased id may be registered again as a new customer
            await session.delete(existing)
            await session.flush()
        customer = Customer(id=uuid.uuid4(), external_id=external_id, status="active")
        _apply(customer, values)
        session.add(customer)
        await session.flush()
        await session.refresh(customer)
        await outbox.enqueue(
            session,
            CUSTOMER_CREATED.envelope(
                payload(customer, sorted(k for k, v in values.items() if v is not None)),
                subject_id=external_id,
            ),
        )
        await _after_change(session, customer, actor)
        return customer, True
    customer = await writable(session, external_id)
    await _update(session, customer, values, actor)
    return customer, False


async def patch(
    session: AsyncSession, external_id: str, body: CustomerFields, actor: Actor
) -> Customer:
    """``PATCH``: change only the fields sent."""
    customer = await writable(session, external_id)
    await _update(
        session, customer, body.model_dump(include=set(PROFILE_FIELDS), exclude_unset=True), actor
    )
    return customer


async def _update(
    session: AsyncSession, customer: Customer, values: dict[str, Any], actor: Actor
) -> None:
    changed = _apply(customer, values)
    if not changed:
        return
    await session.flush()
    await session.refresh(customer)
    await outbox.enqueue(
        session,
        CUSTOMER_UPDATED.envelope(payload(customer, changed), subject_id=customer.external_id),
    )
    await _after_change(session, customer, actor)


async def _after_change(session: AsyncSession, customer: Customer, actor: Actor) -> None:
    """Automatic duplicate merging by the configured rules (off by default)."""
    from crm_profile.identity.service import auto_merge

    await auto_merge(session, customer, actor)


async def read(session: AsyncSession, customer: Customer) -> CustomerRead:
    """``customer`` with its tags and the external ids merged into it."""
    repo = CustomerRepository(session)
    group = await repo.group_ids(customer.id)
    view = CustomerRead.model_validate(customer)
    view.tags = [TagRead(tag=t.tag, origin=t.origin) for t in await repo.tags(group)]
    view.merged_external_ids = await repo.merged_external_ids(customer.id)
    return view


async def list_customers(
    session: AsyncSession,
    *,
    email: str | None,
    phone: str | None,
    tag: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[CustomerRead], str | None]:
    """A page of active customers with their tags."""
    page: Page[Customer] = await CustomerRepository(session).list_active(
        email=email, phone=phone, tag=tag, cursor=cursor, limit=limit
    )
    return [await read(session, c) for c in page.items], page.next_cursor


async def arrival(session: AsyncSession, external_id: str) -> tuple[Customer, Customer]:
    """The row ``external_id`` names (even when merged) and its group's survivor, locked.

    Facts that arrive for a customer (consent decisions, tags) stay with the id they arrived
    for, as events and orders do, so undoing a merge gives each side back what it received;
    reads take the whole merge group. Locking the survivor serialises writes to one group.
    """
    repo = CustomerRepository(session)
    named = await repo.by_external_id(external_id)
    if named is None or named.status == "erased":
        raise CustomerNotFound(f"no customer with external id {external_id!r}")
    survivor = await resolve(session, external_id)
    await repo.by_id(survivor.id, for_update=True)
    return named, survivor


async def ensure_many(session: AsyncSession, external_ids: Collection[str]) -> dict[str, uuid.UUID]:
    """``ensure`` for a whole intake batch: the id of the row each external id names.

    That is the row's own id, not its survivor's: events keep the customer they arrived for.
    Usually every id is known and this is one query. Unknown ids are created bare in one
    statement, each announced as created (one round trip for all announcements); an erased id
    starts over through :func:`ensure`.
    """
    repo = CustomerRepository(session)
    ids = await repo.live_ids_by_external_id(external_ids)
    if len(ids) == len(external_ids):
        return ids
    missing = [e for e in external_ids if e not in ids]
    found = await repo.rows_by_external_id(missing)  # erased, or created meanwhile
    ids.update((e, id_) for e, (id_, status) in found.items() if status != "erased")
    unknown = [e for e in missing if e not in found]
    if unknown:
        created = await repo.create_bare(unknown)
        await outbox.enqueue_many(
            session,
            [CUSTOMER_CREATED.envelope(payload(c, []), subject_id=c.external_id) for c in created],
        )
        ids.update((c.external_id, c.id) for c in created)
        raced = [e for e in unknown if e not in ids]  # created by a concurrent request
        if raced:
            ids.update((e, id_) for e, (id_, _) in (await repo.rows_by_external_id(raced)).items())
    for external_id in (e for e, (_, status) in found.items() if status == "erased"):
        ids[external_id] = (await ensure(session, external_id)).id
    return ids
