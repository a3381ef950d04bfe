"""Alembic migrations of project memory (hand-written row-level security included)."""
