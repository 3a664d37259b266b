"""«Интерсвязь» and BILLmanager: order retries, handlers per tariff, profile options

BILLmanager orders that wait keep why (``wait_reason``), how many tries failed in a row and
when the retry sweep tries again. ``bm_tariff_handlers`` lists the handlers that may sell a
tariff in priority order; existing tariffs get what the implicit rule used to pick (every
handler with the tariff handler's seller URL and product type, by sort). An installation that
has an intercom connection gets the ``isvyaz_login`` field if it lacks it. The intercom
connection's new options live in its JSON ``options``: no column.

Revision ID: 3c14e2d4f6a7
Revises: 2b13d1c3e5f6
Create Date: 2026-12-03 13:15:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '3c14e2d4f6a7'
down_revision = '2b13d1c3e5f6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('bm_services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wait_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('bm_tariff_handlers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('handler_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['handler_id'], ['bm_handlers.id'], name=op.f('fk_bm_tariff_handlers_handler_id_bm_handlers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tariff_id'], ['bm_tariffs.id'], name=op.f('fk_bm_tariff_handlers_tariff_id_bm_tariffs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bm_tariff_handlers')),
    sa.UniqueConstraint('tariff_id', 'handler_id', name='uq_bm_tariff_handlers_tariff_handler')
    )
    with op.batch_alter_table('bm_tariff_handlers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bm_tariff_handlers_handler_id'), ['handler_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bm_tariff_handlers_tariff_id'), ['tariff_id'], unique=False)
    # what the implicit rule picked: the same seller and product type, by sort
    op.execute("INSERT INTO bm_tariff_handlers (tariff_id, handler_id, position) "
               "SELECT t.id, h.id, h.sort FROM bm_tariffs t JOIN bm_handlers b ON b.id = t.handler_id "
               "JOIN bm_handlers h ON h.url = b.url AND h.itemtype = b.itemtype")
    op.execute("INSERT INTO extra_field_definitions (name, title, type, pattern, required) "
               "SELECT 'isvyaz_login', 'Логин «Интерсвязь»', 'string', '[A-Za-z0-9_.-]{3,64}', false "
               "WHERE EXISTS (SELECT 1 FROM platform_connections WHERE kind = 'intercom') "
               "AND NOT EXISTS (SELECT 1 FROM extra_field_definitions WHERE name = 'isvyaz_login')")


def downgrade():
    with op.batch_alter_table('bm_tariff_handlers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bm_tariff_handlers_tariff_id'))
        batch_op.drop_index(batch_op.f('ix_bm_tariff_handlers_handler_id'))
    op.drop_table('bm_tariff_handlers')
    with op.batch_alter_table('bm_services', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('wait_reason')
