"""Job history, CHECK constraints, ledger foreign keys (issue 17)

Revision ID: 8b19d7e5f6a8
Revises: 7a18c6d4e5f7
Create Date: 2026-12-03 16:00:00

* ``job_runs``: one row per job staff started (portal/models/jobs.py), kept after RQ forgets it.
* A CHECK on every status, kind, role and reason column (portal/models: ``one_of``), so that
  no code path or hand-written SQL can store a state the code does not know.
* ``ledger_entries.assigned_service_id`` and ``.charge_run_id`` become foreign keys, ON DELETE
  RESTRICT: the ledger is append-only, so deleting a service or a run with money posted against
  it is refused rather than rewriting (SET NULL) or deleting (CASCADE) ledger rows.

Existing rows are checked first: a value a new constraint would refuse (or a ledger row naming
a service or run that does not exist) stops the upgrade with the offending values listed,
before anything is changed, for staff to correct them and upgrade again. The value lists are
frozen here as they were at this revision (the models may grow them later, with a migration).
On SQLite the tables are recreated (batch mode); migrations/env.py turns foreign keys off for
that, so dropping the old copy of a table does not delete its children's rows.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '8b19d7e5f6a8'
down_revision = '7a18c6d4e5f7'
branch_labels = None
depends_on = None


def _in(column, *values):
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


ROLES = ("admin", "manager", "viewer")
# table -> [(column, condition)]; the constraint is ck_<table>_<column>, as portal/models names it
CHECKS = {
    "accounts": [("status", _in("status", "inactive", "active", "blocked", "disabled")),
                 ("block_reasons", "block_reasons >= 0 AND block_reasons <= 7")],
    "extra_field_definitions": [("type", _in("type", "string", "integer", "boolean"))],
    "assigned_services": [("state", _in("state", "active", "suspended", "ended"))],
    "agents": [("kind", _in("kind", "services", "radius", "netflow", "intercom", "iptv", "hosting"))],
    "catalog_services": [("charge_period", _in("charge_period", "month", "day")),
                         ("charge_mode", _in("charge_mode", "monthly_advance", "daily_prorata")),
                         ("iptv_kind", _in("iptv_kind", "basic", "additional"))],
    "tariffs": [("kind", _in("kind", "services", "internet"))],
    "subscribers": [("kind", _in("kind", "person", "company"))],
    "sync_states": [("state", _in("state", "pending", "ok", "retry", "dead", "conflict"))],
    "tasks": [("state", _in("state", "open", "done"))],
    "bm_services": [("state", _in("state", "pending", "ordering", "ordered", "attention", "deleted")),
                    ("wait_reason", _in("wait_reason", "account", "unreachable", "balance_unknown", "balance_low",
                                        "refused"))],
    "smotreshka_upsales": [("kind", _in("kind", "add", "replace")),
                           ("state", _in("state", "pending", "committing", "committed", "refused"))],
    "smotreshka_drift": [("kind", _in("kind", "missing_on_platform", "extra_on_platform", "account_missing",
                                      "orphan"))],
    "staff_users": [("role", _in("role", *ROLES))],
    "api_tokens": [("role", _in("role", *ROLES))],
    "stalker_bindings": [("state", _in("state", "bound", "creating", "unbound")),
                         ("how", _in("how", "created", "imported", "linked", "migrated"))],
    "ledger_entries": [("kind", _in("kind", "payment", "charge", "correction", "refund")),
                       ("reason", _in("reason", "account.update", "account.activate", "account.block",
                                      "account.unblock", "account.disable", "service.assign", "service.end",
                                      "service.expiry", "service.resume", "service.suspend"))],
}
# (column, referred table): fk_ledger_entries_<column>_<table>
LEDGER_FKS = [("assigned_service_id", "assigned_services"), ("charge_run_id", "charge_runs")]
JOB_STATUS = _in("status", "started", "finished", "failed", "lost")


def _problems(conn) -> list[str]:
    """What existing rows would break the new constraints, one line per column."""
    out = []
    for table, checks in CHECKS.items():
        for column, condition in checks:
            bad = conn.execute(sa.text(
                f"SELECT {column}, COUNT(*) FROM {table} WHERE NOT ({condition}) GROUP BY {column} "
                f"ORDER BY {column}")).all()
            if bad:
                out.append(f"{table}.{column}: " + ", ".join(f"{v!r} ({n} rows)" for v, n in bad[:20]))
    for column, referred in LEDGER_FKS:
        n = conn.execute(sa.text(
            f"SELECT COUNT(*) FROM ledger_entries l WHERE l.{column} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {referred} r WHERE r.id = l.{column})")).scalar()
        if n:
            out.append(f"ledger_entries.{column}: {n} rows name a {referred} row that does not exist")
    return out


def upgrade():
    problems = _problems(op.get_bind())
    if problems:
        raise RuntimeError("8b19d7e5f6a8: existing rows break the new constraints; correct them and upgrade "
                           "again (nothing was changed):\n  " + "\n  ".join(problems))

    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.String(length=100), nullable=False),
        sa.Column("func", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=True),
        sa.Column("object_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(JOB_STATUS, name=op.f("ck_job_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    op.create_index("ix_job_runs_job_id", "job_runs", ["job_id"], unique=False)
    op.create_index("ix_job_runs_status_id", "job_runs", ["status", "id"], unique=False)

    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for column, condition in checks:
                batch.create_check_constraint(op.f(f"ck_{table}_{column}"), condition)
            if table == "ledger_entries":
                for column, referred in LEDGER_FKS:
                    batch.create_foreign_key(op.f(f"fk_ledger_entries_{column}_{referred}"), referred,
                                             [column], ["id"], ondelete="RESTRICT")


def downgrade():
    for table, checks in reversed(CHECKS.items()):
        with op.batch_alter_table(table) as batch:
            if table == "ledger_entries":
                for column, referred in LEDGER_FKS:
                    batch.drop_constraint(op.f(f"fk_ledger_entries_{column}_{referred}"), type_="foreignkey")
            for column, _condition in checks:
                batch.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
    op.drop_index("ix_job_runs_status_id", table_name="job_runs")
    op.drop_index("ix_job_runs_job_id", table_name="job_runs")
    op.drop_table("job_runs")
