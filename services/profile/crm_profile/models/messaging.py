"""Outbox, inbox and dead-letter tables of the profile schema."""

from crm_common.audit import AuditLog, make_audit_table
from crm_common.events import Outbox, make_dead_letter_table, make_inbox_table, make_outbox_table
from crm_profile.database import metadata

outbox_table = make_outbox_table(metadata)
inbox_table = make_inbox_table(metadata)
dead_letter_table = make_dead_letter_table(metadata)
outbox = Outbox(outbox_table)

audit_table = make_audit_table(metadata)
audit = AuditLog(audit_table)
