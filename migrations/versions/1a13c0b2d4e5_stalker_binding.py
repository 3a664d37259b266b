"""Stalker: the user each account is bound to

Revision ID: 1a13c0b2d4e5
Revises: e1b4c7d2a913
Create Date: 2026-12-03 13:15:00

Until now the sync found an account's Stalker user by its TV ID and login on every pass (and
wrote onto whatever it found). From here on it acts only on the user the account is bound to.
Existing accounts are bound here to the user the old rule found: for an account the last
successful pass saw in Stalker, that user as it was confirmed (login, account number, MAC);
for an account added from Stalker by "+" and not synced yet, its kept Stalker login (else its
billing login), its TV ID and its first STB. When two accounts claim one Stalker user (the old
takeover), the older account keeps it and the other gets no binding: its next pass finds the
login in use and stops with a conflict for staff. No digest of a pushed password exists yet,
so each account's first pass after the upgrade sends its password once.
"""
from datetime import UTC

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '1a13c0b2d4e5'
down_revision = 'e1b4c7d2a913'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'stalker_bindings',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('login', sa.String(length=64), nullable=True),
        sa.Column('account_number', sa.String(length=64), nullable=True),
        sa.Column('mac', sa.String(length=17), nullable=True),
        sa.Column('how', sa.String(length=16), nullable=False),
        sa.Column('new_login', sa.String(length=64), nullable=True),
        sa.Column('password_digest', sa.String(length=64), nullable=True),
        sa.Column('conflict', sa.JSON(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_stalker_bindings_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_stalker_bindings')),
        sa.UniqueConstraint('login', name=op.f('uq_stalker_bindings_login')),
    )
    _bind_existing(op.get_bind())


def _bind_existing(conn) -> None:
    from datetime import datetime

    states = sa.table('sync_states', sa.column('account_id', sa.Integer), sa.column('platform', sa.String),
                      sa.column('actual', sa.JSON))
    tv_ids = sa.table('stalker_tv_ids', sa.column('account_id', sa.Integer), sa.column('tv_id', sa.BigInteger),
                      sa.column('login', sa.String))
    accounts = sa.table('accounts', sa.column('id', sa.Integer), sa.column('login', sa.String))
    stbs = sa.table('stalker_stbs', sa.column('id', sa.Integer), sa.column('account_id', sa.Integer),
                    sa.column('mac', sa.String))
    bindings = sa.table('stalker_bindings', *[sa.column(c) for c in (
        'account_id', 'state', 'login', 'account_number', 'mac', 'how', 'updated_at')])
    found: dict[int, dict] = {}
    for account_id, actual in conn.execute(sa.select(states.c.account_id, states.c.actual)
                                           .where(states.c.platform == 'stalker').order_by(states.c.account_id)):
        if isinstance(actual, dict) and (actual.get('login') or actual.get('stb_mac') or actual.get('account_number')):
            found[account_id] = {'login': actual.get('login') or None,
                                 'account_number': str(actual.get('account_number') or '') or None,
                                 'mac': actual.get('stb_mac') or None}
    rows = conn.execute(sa.select(tv_ids.c.account_id, tv_ids.c.tv_id, tv_ids.c.login, accounts.c.login)
                        .join(accounts, accounts.c.id == tv_ids.c.account_id).order_by(tv_ids.c.account_id)).all()
    for account_id, tv_id, kept, login in rows:
        if account_id not in found:
            mac = conn.execute(sa.select(stbs.c.mac).where(stbs.c.account_id == account_id)
                               .order_by(stbs.c.id).limit(1)).scalar()
            found[account_id] = {'login': kept or login, 'account_number': str(tv_id), 'mac': mac}
    now, taken, out = datetime.now(UTC), set(), []
    for account_id in sorted(found):
        row = found[account_id]
        if row['login'] is not None and row['login'] in taken:
            continue  # two accounts on one Stalker user: the older keeps it
        taken.add(row['login'])
        out.append({'account_id': account_id, 'state': 'bound', 'how': 'migrated', 'updated_at': now, **row})
    if out:
        conn.execute(bindings.insert(), out)


def downgrade():
    op.drop_table('stalker_bindings')
