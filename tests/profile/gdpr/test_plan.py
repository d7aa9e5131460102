"""The map of customer data: every profile table is exported and erased, or says why not."""

from __future__ import annotations

from crm_profile.gdpr.repository import HANDLED_APART, NOT_EXPORTED, customer_tables
from crm_profile.models import metadata


class TestCustomerTables:
    def test_every_table_names_its_customer_or_is_handled_apart(self):
        mapped = {t.name for t in customer_tables()}
        unmapped = {t.name for t in metadata.sorted_tables} - mapped - set(HANDLED_APART)
        assert unmapped == set(), (
            f"{sorted(unmapped)} hold rows that are neither linked to a customer (a foreign key "
            "to customer.id or to a mapped table, or a customer_id / customer_external_id / "
            "anonymous_id column) nor listed in crm_profile.gdpr.repository.HANDLED_APART"
        )

    def test_the_known_tables_are_mapped(self):
        mapped = {t.name for t in customer_tables()}
        assert {
            "customer",
            "customer_identity",
            "consent",
            "consent_history",
            "customer_tag",
            "behaviour_event",
            "order",
            "order_line",
            "order_status_change",
            "refund",
            "merge",
            "export_job",
        } <= mapped
        assert mapped.isdisjoint(HANDLED_APART)
        assert NOT_EXPORTED <= mapped

    def test_parents_come_before_children(self):
        names = [t.name for t in customer_tables()]
        assert names.index("customer") < names.index("order") < names.index("order_line")
