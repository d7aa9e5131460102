"""Identity rules: anonymous ids, duplicate detection, merging customers and undoing merges.

A merge never moves anything: the duplicate keeps its row (``status='merged'``,
``merged_into_id`` = survivor) and its identities, events, orders, tags and consents keep the
customer they arrived for; reads of the survivor take in the whole merge group. Undoing a merge
is therefore only a matter of detaching the duplicate (with whatever was merged into it) again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.audit import actor_name
from crm_common.auth import ApiKeyPrincipal, CustomerPrincipal
from crm_common.events import Envelope
from crm_profile.config import settings
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.schemas import PROFILE_FIELDS
from crm_profile.customers.service import MAX_CHAIN, ensure, payload, resolve
from crm_profile.events import (
    CONSENT_CHANGED,
    CUSTOMER_MERGED,
    CUSTOMER_UNMERGED,
    CUSTOMER_UPDATED,
    IDENTITY_LINKED,
    ConsentChangedV1,
    CustomerMergedV1,
    CustomerUnmergedV1,
    IdentityLinkedV1,
)
from crm_profile.identity.errors import (
    AlreadyMerged,
    AnonymousIdTaken,
    MergeAlreadyUndone,
    MergeIntoSelf,
    MergeLoop,
    MergeNotFound,
    MergeNotUndoable,
)
from crm_profile.identity.repository import (
    Decision,
    DuplicateRepository,
    GroupConsentRepository,
    IdentityRepository,
    MergeRepository,
)
from crm_profile.identity.schemas import (
    DuplicatePage,
    DuplicatePair,
    IdentityRead,
    MergePage,
    MergeRead,
)
from crm_profile.models import Customer, CustomerIdentity, Merge, audit, outbox

Actor = ApiKeyPrincipal | CustomerPrincipal | None
Effective = dict[tuple[str, str], Decision]
#: Source named in the denial published when an undo leaves a customer with no decision at all.
UNDO_SOURCE = "merge_undone"


# --- anonymous ids -------------------------------------------------------------------------


async def identify(
    session: AsyncSession, customer_external_id: str, anonymous_id: str
) -> tuple[IdentityRead, bool]:
    """Link ``anonymous_id`` to the customer (created bare if unknown); ``True`` on a new link."""
    identities = IdentityRepository(session)
    existing = await identities.by_anonymous_id(anonymous_id)
    if existing is not None:
        return await _relink(session, existing, customer_external_id), False
    await ensure(session, customer_external_id)
    # The link goes to the customer as named, not its survivor: undoing a merge keeps it there.
    named = await _named(session, customer_external_id)
    if not await identities.link(named.id, anonymous_id):  # linked concurrently
        raced = await identities.by_anonymous_id(anonymous_id)
        assert raced is not None
        return await _relink(session, raced, customer_external_id), False
    link = await identities.by_anonymous_id(anonymous_id)
    assert link is not None
    attached = await identities.attach_anonymous_events(anonymous_id, named.id)
    await outbox.enqueue(
        session,
        IDENTITY_LINKED.envelope(
            IdentityLinkedV1(customer_external_id=named.external_id, anonymous_id=anonymous_id),
            subject_id=named.external_id,
        ),
    )
    return _identity(link, named, attached), True


async def _relink(
    session: AsyncSession, link: CustomerIdentity, customer_external_id: str
) -> IdentityRead:
    """A repeated link: fine for the same customer (or its merge group), 409 for another."""
    customers = CustomerRepository(session)
    owner = await customers.by_id(link.customer_id)
    named = await customers.by_external_id(customer_external_id)
    assert owner is not None  # the foreign key cascades deletes
    if named is None or (await _root(session, named)).id != (await _root(session, owner)).id:
        raise AnonymousIdTaken(f"anonymous id is already linked to customer {owner.external_id!r}")
    # Events may have arrived anonymously since the first link; they join the profile now.
    attached = await IdentityRepository(session).attach_anonymous_events(link.value, owner.id)
    return _identity(link, owner, attached)


def _identity(link: CustomerIdentity, owner: Customer, attached: int) -> IdentityRead:
    return IdentityRead(
        customer_id=owner.id,
        customer_external_id=owner.external_id,
        anonymous_id=link.value,
        linked_at=link.linked_at,
        events_linked=attached,
    )


# --- duplicates ----------------------------------------------------------------------------


async def list_duplicates(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> DuplicatePage:
    """Pairs of active customers sharing a normalised email or phone, older one first."""
    rows, next_cursor = await DuplicateRepository(session).pairs(cursor=cursor, limit=limit)
    items = [
        DuplicatePair(
            customer_id=r.older_id,
            customer_external_id=r.older_external_id,
            duplicate_id=r.newer_id,
            duplicate_external_id=r.newer_external_id,
            reasons=r.reasons,
        )
        for r in rows
    ]
    return DuplicatePage(items=items, next_cursor=next_cursor)


# --- merging -------------------------------------------------------------------------------


async def merge(
    session: AsyncSession,
    survivor_external_id: str,
    duplicate_external_id: str,
    reason: str | None,
    actor: Actor,
) -> Merge:
    """``POST /v1/customers/{survivor}/merge``: fold the duplicate into the path's customer."""
    if duplicate_external_id == survivor_external_id:
        raise MergeIntoSelf(f"customer {survivor_external_id!r} cannot be merged into itself")
    survivor = await resolve(session, survivor_external_id)
    duplicate = await _named(session, duplicate_external_id)
    return await merge_customers(
        session, survivor, duplicate, rule="manual", reason=reason, actor=actor
    )


async def merge_customers(
    session: AsyncSession,
    survivor: Customer,
    duplicate: Customer,
    *,
    rule: str,
    reason: str | None,
    actor: Actor,
) -> Merge:
    """Fold ``duplicate`` (with its own group) into the active ``survivor``."""
    locked = await DuplicateRepository(session).lock([survivor.id, duplicate.id])
    survivor, duplicate = locked[survivor.id], locked[duplicate.id]
    if duplicate.merged_into_id is not None:
        raise AlreadyMerged(f"customer {duplicate.external_id!r} was already merged")
    if survivor.id == duplicate.id:
        raise MergeLoop(
            f"customer {duplicate.external_id!r} is the survivor of the customer named in the path"
        )
    if survivor.merged_into_id is not None:  # merged by a concurrent request since resolving
        raise CustomerMerged(f"customer {survivor.external_id!r} was merged meanwhile; retry")
    customers, consents = CustomerRepository(session), GroupConsentRepository(session)
    before = await consents.effective(await customers.group_ids(survivor.id))
    filled = _fill(survivor, duplicate)
    duplicate.status, duplicate.merged_into_id = "merged", survivor.id
    record = Merge(
        id=uuid.uuid4(),
        survivor_id=survivor.id,
        duplicate_id=duplicate.id,
        rule=rule,
        reason=reason,
        filled_fields=filled,
        merged_by=actor_name(actor),
        merged_at=datetime.now(UTC),
    )
    session.add(record)
    await session.flush()
    await _refresh(session, survivor, duplicate)
    after = await consents.effective(await customers.group_ids(survivor.id))
    events = [
        CUSTOMER_MERGED.envelope(
            CustomerMergedV1(
                merge_id=str(record.id),
                survivor_id=str(survivor.id),
                survivor_external_id=survivor.external_id,
                duplicate_id=str(duplicate.id),
                duplicate_external_id=duplicate.external_id,
                rule=rule,
            ),
            subject_id=survivor.external_id,
        ),
        *_consent_changes(survivor, before, after, record.merged_at),
    ]
    if filled:
        events.append(_updated(survivor, sorted(filled)))
    await outbox.enqueue_many(session, events)
    await _audit(session, actor, "customer.merged", record, survivor, duplicate, sorted(filled))
    return record


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {}


def _jsonable(value: Any) -> Any:
    """How a filled value is kept in ``Merge.filled_fields`` (and compared on undo)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _fill(survivor: Customer, duplicate: Customer) -> dict[str, Any]:
    """Copy the duplicate's values into the survivor's empty fields; what was filled."""
    filled: dict[str, Any] = {}
    for field in PROFILE_FIELDS:
        value = getattr(duplicate, field)
        if _empty(getattr(survivor, field)) and not _empty(value):
            setattr(survivor, field, dict(value) if isinstance(value, dict) else value)
            filled[field] = _jsonable(value)
    return filled


def _revert(survivor: Customer, filled: dict[str, Any]) -> list[str]:
    """Empty the fields a merge filled, unless they were changed since; what was reverted."""
    reverted = []
    for field, merged_in in sorted(filled.items()):
        if _jsonable(getattr(survivor, field)) == merged_in:
            setattr(survivor, field, {} if field == "attributes" else None)
            reverted.append(field)
    return reverted


# --- undoing -------------------------------------------------------------------------------


async def undo(session: AsyncSession, merge_id: uuid.UUID, actor: Actor) -> Merge:
    """``POST /v1/merges/{id}/undo``: the duplicate (with its own group) is its own again."""
    merges = MergeRepository(session)
    record = await merges.by_id(merge_id, for_update=True)
    if record is None:
        raise MergeNotFound(f"no merge with id {merge_id}")
    if record.undone_at is not None:
        raise MergeAlreadyUndone(f"merge {merge_id} was undone at {record.undone_at.isoformat()}")
    locked = await DuplicateRepository(session).lock([record.survivor_id, record.duplicate_id])
    survivor, duplicate = locked[record.survivor_id], locked[record.duplicate_id]
    root = await _root(session, survivor)
    if duplicate.merged_into_id != survivor.id or root.status != "active":
        raise MergeNotUndoable(f"the customers of merge {merge_id} were erased since")
    customers, consents = CustomerRepository(session), GroupConsentRepository(session)
    before = await consents.effective(await customers.group_ids(root.id))
    reverted = _revert(survivor, record.filled_fields)
    duplicate.status, duplicate.merged_into_id = "active", None
    now = datetime.now(UTC)
    record.undone_at, record.undone_by = now, actor_name(actor)
    await session.flush()
    await _refresh(session, survivor, duplicate)
    root_after = await consents.effective(await customers.group_ids(root.id))
    duplicate_after = await consents.effective(await customers.group_ids(duplicate.id))
    events = [
        CUSTOMER_UNMERGED.envelope(
            CustomerUnmergedV1(
                merge_id=str(record.id),
                survivor_id=str(survivor.id),
                survivor_external_id=survivor.external_id,
                duplicate_id=str(duplicate.id),
                duplicate_external_id=duplicate.external_id,
            ),
            subject_id=survivor.external_id,
        ),
        *_consent_changes(root, before, root_after, now),
        # While merged, the duplicate's reads showed the group's consents: announce its own again.
        *_consent_changes(duplicate, before, duplicate_after, now),
    ]
    if reverted:
        events.append(_updated(survivor, reverted))
    await outbox.enqueue_many(session, events)
    await _audit(session, actor, "customer.unmerged", record, survivor, duplicate, reverted)
    return record


# --- automatic merging ---------------------------------------------------------------------


async def auto_merge(session: AsyncSession, customer: Customer, actor: Actor) -> None:
    """Merge ``customer`` and an active customer with the same email/phone when that rule is on.

    The newer of the two is merged into the older. Pairs whose merge was undone are never merged
    again automatically: the undo said they are different people.
    """
    rules = [("email", settings.auto_merge_email), ("phone", settings.auto_merge_phone)]
    duplicates = DuplicateRepository(session)
    for field, enabled in rules:
        if not enabled:
            continue
        for other in await duplicates.matching_active(customer, field):
            older_first = (other.created_at, other.id) < (customer.created_at, customer.id)
            survivor, duplicate = (other, customer) if older_first else (customer, other)
            await merge_customers(
                session, survivor, duplicate, rule=field, reason=None, actor=actor
            )
            if duplicate is customer:
                return


# --- reads ---------------------------------------------------------------------------------


async def get_merge(session: AsyncSession, merge_id: uuid.UUID) -> Merge:
    """The merge with this id; 404 otherwise."""
    record = await MergeRepository(session).by_id(merge_id)
    if record is None:
        raise MergeNotFound(f"no merge with id {merge_id}")
    return record


async def view(session: AsyncSession, record: Merge) -> MergeRead:
    """``record`` with the external ids of its customers."""
    names = await MergeRepository(session).external_ids([record.survivor_id, record.duplicate_id])
    return _merge_read(record, names)


async def list_merges(
    session: AsyncSession, customer: Customer, *, cursor: str | None, limit: int
) -> MergePage:
    """Merges any member of ``customer``'s group took part in, oldest first."""
    merges = MergeRepository(session)
    group = await CustomerRepository(session).group_ids(customer.id)
    page = await merges.of_group(group, cursor=cursor, limit=limit)
    names = await merges.external_ids(
        [i for m in page.items for i in (m.survivor_id, m.duplicate_id)]
    )
    return MergePage(
        items=[_merge_read(m, names) for m in page.items], next_cursor=page.next_cursor
    )


def _merge_read(record: Merge, names: dict[uuid.UUID, str]) -> MergeRead:
    return MergeRead(
        id=record.id,
        survivor_id=record.survivor_id,
        survivor_external_id=names[record.survivor_id],
        duplicate_id=record.duplicate_id,
        duplicate_external_id=names[record.duplicate_id],
        rule=record.rule,
        reason=record.reason,
        filled_fields=sorted(record.filled_fields),
        merged_at=record.merged_at,
        merged_by=record.merged_by,
        undone_at=record.undone_at,
        undone_by=record.undone_by,
    )


# --- helpers -------------------------------------------------------------------------------


async def _named(session: AsyncSession, external_id: str) -> Customer:
    """The customer row with this external id itself (not its survivor); 404 when unknown."""
    customer = await CustomerRepository(session).by_external_id(external_id)
    if customer is None or customer.status == "erased":
        raise CustomerNotFound(f"no customer with external id {external_id!r}")
    return customer


async def _root(session: AsyncSession, customer: Customer) -> Customer:
    """The end of ``customer``'s merge chain (itself when it was not merged)."""
    repo = CustomerRepository(session)
    for _ in range(MAX_CHAIN):
        if customer.merged_into_id is None:
            break
        survivor = await repo.by_id(customer.merged_into_id)
        assert survivor is not None  # the foreign key guarantees it
        customer = survivor
    return customer


async def _refresh(session: AsyncSession, *customers: Customer) -> None:
    """Reload what the flush expired (``updated_at``), so callers can read the rows."""
    for customer in customers:
        await session.refresh(customer)


def _consent_changes(
    customer: Customer, before: Effective, after: Effective, now: datetime
) -> list[Envelope]:
    """``consent.changed`` for each channel/purpose whose effective status differs."""
    events = []
    for channel, purpose in sorted(before.keys() | after.keys()):
        old, new = before.get((channel, purpose)), after.get((channel, purpose))
        if new is None:
            if old is None or old.status != "granted":
                continue
            # No decision left: consumers must stop relying on the grant they were told about.
            new = Decision("denied", UNDO_SOURCE, now)
        elif old is not None and old.status == new.status:
            continue
        body = ConsentChangedV1(
            customer_id=str(customer.id),
            customer_external_id=customer.external_id,
            channel=channel,
            purpose=purpose,
            status=new.status,
            source=new.source,
            decided_at=new.decided_at,
        )
        events.append(CONSENT_CHANGED.envelope(body, subject_id=customer.external_id))
    return events


def _updated(customer: Customer, changed: list[str]) -> Envelope:
    return CUSTOMER_UPDATED.envelope(payload(customer, changed), subject_id=customer.external_id)


async def _audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    record: Merge,
    survivor: Customer,
    duplicate: Customer,
    fields: list[str],
) -> None:
    """Audit entry naming the merge and its customers by id (no personal data)."""
    await audit.record(
        session,
        actor=actor,
        action=action,
        target_type="merge",
        target_id=str(record.id),
        details={
            "survivor_external_id": survivor.external_id,
            "duplicate_external_id": duplicate.external_id,
            "rule": record.rule,
            "fields": fields,
        },
    )
