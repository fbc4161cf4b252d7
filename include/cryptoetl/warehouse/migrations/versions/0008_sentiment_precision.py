"""The sentiment precision gate's decisions: ``sentiment_precision_decisions``.

A pod that loads a sentiment model under ``CRYPTOETL_SENTIMENT_INT8=auto`` reuses the decision an
earlier load made for the same weights, calibration set, tolerance, libraries and CPU kernels,
instead of scoring the calibration set both ways again (sentiment/precision.py). A new table only:
the first load after this revision runs the gate once and keeps its decision.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTF8MB4 = {"mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "sentiment_precision_decisions",
        sa.Column("model_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("model_revision", sa.String(64), primary_key=True, nullable=False,
                  comment="the fp32 revision (weights)"),
        sa.Column("calibration", sa.String(64), primary_key=True, nullable=False,
                  comment="set version / truncation length / batch size"),
        sa.Column("tolerance", sa.String(48), primary_key=True, nullable=False),
        sa.Column("runtime", sa.String(96), primary_key=True, nullable=False,
                  comment="torch, transformers and tokenizers versions"),
        sa.Column("cpu", sa.String(96), primary_key=True, nullable=False,
                  comment="torch's CPU capability / quantized engine / int8 dot-product flags"),
        sa.Column("precision", sa.String(8), nullable=False, comment="int8 | fp32: what the gate chose"),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("n_texts", sa.Integer, nullable=False),
        sa.Column("mean_abs_score_diff", sa.Float(53)),
        sa.Column("max_abs_score_diff", sa.Float(53)),
        sa.Column("label_agreement", sa.Float(53)),
        sa.Column("fp32_seconds", sa.Float(53)),
        sa.Column("int8_seconds", sa.Float(53)),
        sa.Column("gate_seconds", sa.Float(53)),
        sa.Column("decided_at", sa.DateTime(), nullable=False, comment="UTC"),
        comment="The sentiment precision gate's decisions, reused by later loads of the same key "
                "(sentiment/precision.py)",
        **UTF8MB4)


def downgrade() -> None:
    op.drop_table("sentiment_precision_decisions")
