"""The warehouse's Alembic environment (``env.py``, ``script.py.mako``) and its revisions (``versions/``).

Run through ``cryptoetl.warehouse.migrate`` (``python -m cryptoetl migrate``), which adopts an old
``init-db`` warehouse, holds the migration lock and adds the configured macro columns; the plain
``alembic`` command (configured in ``pyproject.toml``) is for writing revisions. Nothing here is
imported by the rest of the package.
"""
