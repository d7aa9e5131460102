"""Plumbing shared by every CRM service; no domain code lives here.

Modules: ``settings``, ``db``, ``repository``, ``errors``, ``auth``, ``events`` (envelope,
outbox, inbox), ``broker`` (NATS), ``telemetry``, ``logs``, ``metrics``, ``health``, ``http``,
``app`` (service app assembly), ``worker`` (worker process), ``deadletters`` (operator API),
``migrations`` (Alembic per schema), ``embedded`` (local PostgreSQL/NATS) and ``testing``.
"""

__all__: list[str] = []
__version__ = "0.1.0"
