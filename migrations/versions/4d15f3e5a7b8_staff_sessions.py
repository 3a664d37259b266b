"""Staff sessions that can be ended; login failures while Redis is down

``staff_users.session_version`` is part of the key a staff session carries: logout and
"end sessions" raise it; ``subscribers.cabinet_session_version`` is the cabinet's (logout). ``login_failures`` holds failed logins only while Redis is down.

Revision ID: 4d15f3e5a7b8
Revises: 3c14e2d4f6a7
Create Date: 2026-12-03 13:15:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '4d15f3e5a7b8'
down_revision = '3c14e2d4f6a7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cabinet_session_version', sa.Integer(), server_default='0', nullable=False))
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_scope_at', ['scope', 'at'], unique=False)


def downgrade():
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_scope_at')
    op.drop_table('login_failures')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('cabinet_session_version')
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
