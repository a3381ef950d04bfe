"""The metadata database: sqlmodel tables, Alembic migrations, tenant-bound sessions."""
