"""Contracts keep their own search text; a partial index for "do not block" (issue 16)

Revision ID: 6a49b2c3d4e5
Revises: 5f38a1b2c3d4
Create Date: 2026-12-03 22:40:00

``contracts.search_text``: the contract's number and its subscriber's search text, folded as
``portal.models.search.contract_text`` folds them; the models keep it from now on (a
subscriber's save rewrites their contracts' texts in the same transaction). The contracts and
payments lists search it instead of joining subscribers (at a million rows each walked contract's
subscriber was a random read: 0.1-0.4 s a search). Existing rows are filled here in batches; a
trigram index on it on PostgreSQL. And ``contracts (balance, id) WHERE do_not_block``: the
filter's contracts (about 1 in 100) and their debt as a range.

On a large database the fill and the trigram index take a minute or two at a million contracts
and block writes to contracts meanwhile; run the upgrade in a quiet hour.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '6a49b2c3d4e5'
down_revision = '5f38a1b2c3d4'
branch_labels = None
depends_on = None

BATCH = 5000


def _fill() -> None:
    from portal.models.search import contract_text

    conn = op.get_bind()
    contracts = sa.table("contracts", sa.column("id"), sa.column("number"), sa.column("subscriber_id"),
                         sa.column("search_text"))
    people = sa.table("subscribers", sa.column("id"), sa.column("search_text"))
    last = 0
    while True:
        rows = conn.execute(sa.select(contracts.c.id, contracts.c.number, people.c.search_text)
                            .join(people, people.c.id == contracts.c.subscriber_id)
                            .where(contracts.c.id > last).order_by(contracts.c.id).limit(BATCH)).all()
        if not rows:
            return
        conn.execute(contracts.update().where(contracts.c.id == sa.bindparam("rid"))
                     .values(search_text=sa.bindparam("text")),
                     [{"rid": r.id, "text": contract_text(r.number, r.search_text)} for r in rows])
        last = rows[-1].id


def upgrade():
    with op.batch_alter_table("contracts") as batch:
        batch.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    _fill()
    where = sa.text("do_not_block")
    op.create_index("ix_contracts_do_not_block_balance_id", "contracts", ["balance", "id"], unique=False,
                    postgresql_where=where, sqlite_where=where)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_contracts_search_text_trgm", "contracts", ["search_text"], unique=False,
                        postgresql_using="gin", postgresql_ops={"search_text": "gin_trgm_ops"})


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_contracts_search_text_trgm", table_name="contracts")
    op.drop_index("ix_contracts_do_not_block_balance_id", table_name="contracts")
    with op.batch_alter_table("contracts") as batch:
        batch.drop_column("search_text")
