"""Revisions, one file each, named ``NNNN_slug.py`` with revision id ``NNNN``; ``0001`` is the frozen
baseline. Alembic loads them by path (it ignores this file)."""
