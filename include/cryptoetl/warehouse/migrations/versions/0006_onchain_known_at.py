"""On-chain publication delay: a day's totals are usable from the next midnight + the source's delay.

``crypto_onchain_data.complete_at`` was the next midnight; the loader now writes the next midnight +
the source's ``PUBLICATION_DELAY`` (blockchain.info and Etherscan publish and revise a day's totals
hours after it ends). This revision moves the stored rows of both sources to the new rule (the
delays as of this revision, 6 h each, frozen here: a later change of a delay needs a revision of
its own) and updates the column's comment. Only values change: no column is added.

The feature rows built before it used each on-chain day from midnight. Rebuild them after the
upgrade: ``python -m cryptoetl rebuild-features`` (or ``--start/--end`` for the history you keep).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# data_source prefix -> the source's publication delay in hours (sources/<name>.py PUBLICATION_DELAY)
DELAY_HOURS = {"blockchain.info": 6, "etherscan": 6}
OLD_COMMENT = "UTC end of the day (next midnight): when the totals are final and may be used"
NEW_COMMENT = "UTC time from which the totals may be used: the next midnight + the source's publication delay"


def _day_plus(hours: int) -> str:
    """SQL for the start of the row's ``date`` + ``hours``, as the dialect stores a DATETIME."""
    if op.get_context().dialect.name == "sqlite":  # SQLAlchemy's text form of a DATETIME
        return f"(strftime('%Y-%m-%d %H:%M:%S', date, '+{hours} hours') || '.000000')"
    return f"(TIMESTAMP(date) + INTERVAL {hours} HOUR)"


def _set_complete_at(delays: dict[str, int]) -> None:
    for prefix, hours in delays.items():
        op.execute(f"UPDATE crypto_onchain_data SET complete_at = {_day_plus(24 + hours)} "
                   f"WHERE data_source LIKE '{prefix}%'")


def _comment(comment: str, existing: str) -> None:
    if op.get_context().dialect.name in ("mysql", "mariadb"):  # SQLite keeps no column comments
        op.alter_column("crypto_onchain_data", "complete_at", existing_type=sa.DateTime(), existing_nullable=False,
                        comment=comment, existing_comment=existing)


def upgrade() -> None:
    _set_complete_at(DELAY_HOURS)
    _comment(NEW_COMMENT, OLD_COMMENT)


def downgrade() -> None:
    _comment(OLD_COMMENT, NEW_COMMENT)
    _set_complete_at(dict.fromkeys(DELAY_HOURS, 0))
