"""One live copy of a catalog service per account; one-time keys of assignments

Revision ID: e1b4c7d2a913
Revises: d5a8f3b1c206
Create Date: 2026-12-03 10:30:00

Two purchases of one offer (a double click, two upsale transactions) could assign a service
twice, and each copy was charged every month. ``uq_assigned_services_live`` refuses a second
live (not ended) copy; hosting orders, one service per order, are marked ``per_order`` and may
repeat. Copies that exist already are ended here (all but the oldest, as of yesterday by the
database's date), so the next charge run refunds the rest of this month for them; the months
before were charged twice and are not refunded (the audit log lists each ended copy, for staff
to correct by hand).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e1b4c7d2a913'
down_revision = 'd5a8f3b1c206'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("assigned_services") as batch:
        batch.add_column(sa.Column("per_order", sa.Boolean(), nullable=False, server_default=sa.text("false")))
        batch.add_column(sa.Column("order_key", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_assigned_services_order_key", ["order_key"])
    # hosting orders: one assigned service each
    op.execute("UPDATE assigned_services SET per_order = true WHERE id IN "
               "(SELECT assigned_service_id FROM bm_services)")
    conn = op.get_bind()
    dupes = conn.execute(sa.text(
        "SELECT a.id, a.account_id FROM assigned_services a WHERE a.state <> 'ended' AND NOT a.per_order "
        "AND EXISTS (SELECT 1 FROM assigned_services b WHERE b.account_id = a.account_id "
        "AND b.service_id = a.service_id AND b.state <> 'ended' AND NOT b.per_order AND b.id < a.id)")).all()
    if dupes:
        conn.execute(sa.text(
            "UPDATE assigned_services SET state = 'ended', state_changed_on = CURRENT_DATE, "
            "ends_on = CASE WHEN starts_on > CURRENT_DATE - 1 THEN starts_on - 1 ELSE CURRENT_DATE - 1 END "
            "WHERE id = :id") if conn.dialect.name == "postgresql" else sa.text(
            "UPDATE assigned_services SET state = 'ended', state_changed_on = date('now'), "
            "ends_on = CASE WHEN starts_on > date('now', '-1 day') THEN date(starts_on, '-1 day') "
            "ELSE date('now', '-1 day') END WHERE id = :id"),
            [{"id": i} for i, _a in dupes])
        conn.execute(sa.text(
            "INSERT INTO audit_log (at, actor, action, object_type, object_id, summary) "
            "VALUES (CURRENT_TIMESTAMP, 'system', 'service.end', 'account', :account, :summary)"),
            [{"account": a, "summary": f"duplicate copy {i} of a service ended (migration e1b4c7d2a913)"}
             for i, a in dupes])
    kw = {"sqlite_where": sa.text("state != 'ended' AND per_order = 0"),
          "postgresql_where": sa.text("state <> 'ended' AND NOT per_order")}
    op.create_index("uq_assigned_services_live", "assigned_services", ["account_id", "service_id"],
                    unique=True, **kw)


def downgrade():
    op.drop_index("uq_assigned_services_live", table_name="assigned_services")
    with op.batch_alter_table("assigned_services") as batch:
        batch.drop_constraint("uq_assigned_services_order_key", type_="unique")
        batch.drop_column("order_key")
        batch.drop_column("per_order")
