"""ЮKassa shop id stored encrypted like its secret key (issue 18 part 2)

Revision ID: 483b394a5260
Revises: 2629172f3048
Create Date: 2026-12-03 19:55:00

``online_shops.shop_id`` (plain) becomes ``shop_id_enc``, encrypted with the secret key's cipher
and key (portal/billing/crypto.py: Fernet, CREDENTIALS_KEY): existing rows are encrypted on the
way up and decrypted back on the way down. Run by `flask db`, so the app (and its key) is there.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '483b394a5260'
down_revision = '2629172f3048'
branch_labels = None
depends_on = None


def _convert(source: str, target: str, how) -> None:
    """Fill ``target`` from ``source`` through ``how`` for every shop (one per payment service:
    a handful of rows)."""
    conn = op.get_bind()
    t = sa.table('online_shops', sa.column('id'), sa.column(source), sa.column(target))
    for row_id, value in conn.execute(sa.select(t.c.id, t.c[source])).all():
        conn.execute(t.update().where(t.c.id == row_id).values({target: how(value)}))


def upgrade():
    from portal.billing.crypto import encrypt

    with op.batch_alter_table('online_shops', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shop_id_enc', sa.String(length=500), nullable=True))
    _convert('shop_id', 'shop_id_enc', encrypt)
    with op.batch_alter_table('online_shops', schema=None) as batch_op:
        batch_op.alter_column('shop_id_enc', existing_type=sa.String(length=500), nullable=False)
        batch_op.drop_column('shop_id')


def downgrade():
    from portal.billing.crypto import decrypt

    with op.batch_alter_table('online_shops', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shop_id', sa.String(length=64), nullable=True))
    _convert('shop_id_enc', 'shop_id', decrypt)
    with op.batch_alter_table('online_shops', schema=None) as batch_op:
        batch_op.alter_column('shop_id', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('shop_id_enc')
