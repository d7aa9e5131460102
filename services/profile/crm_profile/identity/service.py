"""Identity linking and merging of duplicates (placeholder until the merge rules land)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import ApiKeyPrincipal, CustomerPrincipal
from crm_profile.models import Customer


async def auto_merge(
    session: AsyncSession, customer: Customer, actor: ApiKeyPrincipal | CustomerPrincipal | None
) -> None:
    """Merge ``customer`` into an existing duplicate when an automatic rule is on."""
    return None
