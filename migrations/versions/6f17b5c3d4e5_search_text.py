"""Folded search text of subscribers and accounts (find people as they call in)

Revision ID: 6f17b5c3d4e5
Revises: 5e16a4b2c3d4
Create Date: 2026-12-03 14:00:00

``subscribers.search_text`` (name, phones as digits, e-mail, cabinet login, postal address)
and ``accounts.search_text`` (login, address with the flat as "кв. N"), folded as
``portal.models.search`` folds them (lower case, ё as е, phones with 8 read as 7); the models
keep them from now on. Existing rows are filled here, in batches; a trigram index on each on
PostgreSQL.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '6f17b5c3d4e5'
down_revision = '5e16a4b2c3d4'
branch_labels = None
depends_on = None

BATCH = 5000


def _fill(table: str, columns: list[str], build) -> None:
    from types import SimpleNamespace

    conn = op.get_bind()
    t = sa.table(table, sa.column("id"), sa.column("search_text"), *(sa.column(c) for c in columns))
    if "phones" in columns:
        t.c.phones.type = sa.JSON()
    last = 0
    while True:
        rows = conn.execute(sa.select(t.c.id, *(t.c[c] for c in columns)).where(t.c.id > last)
                            .order_by(t.c.id).limit(BATCH)).all()
        if not rows:
            return
        conn.execute(t.update().where(t.c.id == sa.bindparam("rid")).values(search_text=sa.bindparam("text")),
                     [{"rid": r.id, "text": build(SimpleNamespace(**r._mapping))} for r in rows])
        last = rows[-1].id


def upgrade():
    from portal.models.search import account_text, subscriber_text

    for table in ("subscribers", "accounts"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    _fill("subscribers", ["full_name", "phones", "email", "cabinet_login", "postal_address"], subscriber_text)
    _fill("accounts", ["login", "house", "flat"], account_text)
    if op.get_bind().dialect.name == "postgresql":
        for name, table in (("ix_subscribers_search_text_trgm", "subscribers"),
                            ("ix_accounts_search_text_trgm", "accounts")):
            op.create_index(name, table, ["search_text"], unique=False, postgresql_using="gin",
                            postgresql_ops={"search_text": "gin_trgm_ops"})


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_accounts_search_text_trgm", table_name="accounts")
        op.drop_index("ix_subscribers_search_text_trgm", table_name="subscribers")
    for table in ("accounts", "subscribers"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("search_text")
