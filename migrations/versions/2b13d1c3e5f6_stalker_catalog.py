"""Stalker: text external ids, optional and mandatory packages per plan

Revision ID: 2b13d1c3e5f6
Revises: 1a13c0b2d4e5
Create Date: 2026-12-03 13:15:00

A plan's external_id is kept as text (Stalker allows any text up to 64 characters); plans
imported before keep working: their tariff id was the external_id, so it is written as the
text. Their packages are not known per plan yet (``packages_known`` false) until staff
re-sync the plan from the console; until then the sync treats the optional packages as
unknown (see portal/platforms/stalker/catalog.py).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '2b13d1c3e5f6'
down_revision = '1a13c0b2d4e5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stalker_imported_tariffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_external_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('packages_known', sa.Boolean(), nullable=False, server_default=sa.text('false')))
    op.execute("UPDATE stalker_imported_tariffs SET plan_external_id = CAST(tariff_id AS VARCHAR(64))")
    with op.batch_alter_table('stalker_imported_tariffs', schema=None) as batch_op:
        batch_op.alter_column('plan_external_id', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(op.f('uq_stalker_imported_tariffs_plan_external_id'), ['plan_external_id'])
    op.create_table('stalker_plan_packages',
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('package_external_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('optional', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['tariff_id'], ['stalker_imported_tariffs.tariff_id'],
                            name=op.f('fk_stalker_plan_packages_tariff_id_stalker_imported_tariffs'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tariff_id', 'package_external_id', name=op.f('pk_stalker_plan_packages'))
    )


def downgrade():
    op.drop_table('stalker_plan_packages')
    with op.batch_alter_table('stalker_imported_tariffs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_stalker_imported_tariffs_plan_external_id'), type_='unique')
        batch_op.drop_column('packages_known')
        batch_op.drop_column('plan_external_id')
