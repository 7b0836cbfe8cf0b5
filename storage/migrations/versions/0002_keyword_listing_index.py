"""keyword listing index: the default keyword page (newest first) read off an index, not a sort

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["account_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")]


def upgrade() -> None:
    op.create_index("ix_igny8_keywords_listing", "igny8_keywords", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_igny8_keywords_listing", table_name="igny8_keywords")
