"""News stories: ``crypto_news_sightings.story_key``, what a CryptoPanic post without the
publisher's URL is matched on (the publisher's domain and the normalised title; the story rule in
``loaders/news.py``).

Rows written before this revision keep NULL there: they are matched by URL only, as before, until
their interval is loaded again (a rerun of the news DAGs over that window fills it). Pure DDL, so
``migrate --sql`` prints it whole.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COMMENT = ("sha256 of the publisher's domain and the normalised title (story rule, loaders/news.py); "
           "NULL in rows written before revision 0005")


def upgrade() -> None:
    op.add_column("crypto_news_sightings", sa.Column("story_key", sa.String(64), comment=COMMENT))
    op.create_index("ix_crypto_news_sightings_story_key", "crypto_news_sightings", ["story_key"])


def downgrade() -> None:
    op.drop_index("ix_crypto_news_sightings_story_key", table_name="crypto_news_sightings")
    with op.batch_alter_table("crypto_news_sightings") as batch:
        batch.drop_column("story_key")
