"""stalker: trigram index on the console snapshot's search text (PostgreSQL)

Revision ID: c4e7a2d9b815
Revises: 597cd721d739
Create Date: 2026-11-22 09:00:00

The Stalker console's search box matches ``search LIKE '%term%'`` on up to 100,000 snapshot
rows a table; without an index PostgreSQL walks the whole table for a rare term (25-50 ms).
A pg_trgm GIN index answers terms of three characters or more from the index (1-5 ms).
PostgreSQL only, like the model's ``trigram_index``; pg_trgm itself comes from 3c1d2b9e6a4f.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c4e7a2d9b815'
down_revision = '597cd721d739'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index("ix_stalker_snapshot_rows_search_trgm", "stalker_snapshot_rows", ["search"], unique=False,
                    postgresql_using="gin", postgresql_ops={"search": "gin_trgm_ops"})


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_stalker_snapshot_rows_search_trgm", table_name="stalker_snapshot_rows")
