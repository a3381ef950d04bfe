"""Project memory: content-addressed artifacts with their metadata, tenants isolated by the
database, values encrypted at rest, and a tamper-evident audit journal.

The metadata database is SQLite at ``$PLAN2FLOW_HOME/plan2flow.db`` by default (single tenant
per process, enforced by the ORM) or PostgreSQL (``PLAN2FLOW_DATABASE_URL``), where row-level
security isolates tenants. Blobs live under ``$PLAN2FLOW_HOME/blobs`` or in S3-compatible
storage (``PLAN2FLOW_ARTIFACTS_URL``). This part imports neither Prefect nor the runtime.
"""

from __future__ import annotations
