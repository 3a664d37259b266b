"""Payments' search texts beside the ledger, kept by triggers (issue 16)

Revision ID: 9d5e6f7a8b90
Revises: 8c6bd4e5f607
Create Date: 2026-12-04 08:30:00

``payment_texts``: one row per payment (ledger entry id, contract id, payment id, comment, the
payer's text: the contract's ``search_text``, and the time, source and cashier the list filters
by), which the payments list searches instead of
reading each walked payment's contract (``portal/models/payment_texts.py``). Written by the
database itself: an ``AFTER INSERT ON ledger_entries WHEN kind = 'payment'`` trigger copies a new
payment's texts, and an ``AFTER UPDATE OF search_text ON contracts`` trigger rewrites that
contract's rows, so a renamed payer's payments follow the card; no ledger row is updated. A
trigram index on the payer text on PostgreSQL.

The rows of the payments already posted are filled here in one statement (a million payments
joined to their contracts: about a minute, plus the indexes; writes to the ledger wait
meanwhile: run the upgrade in a quiet hour).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '9d5e6f7a8b90'
down_revision = '8c6bd4e5f607'
branch_labels = None
depends_on = None

COPY = """INSERT INTO payment_texts (entry_id, contract_id, key, comment, payer, created_at, source, cashier_id)
    SELECT NEW.id, NEW.contract_id, NEW.idempotency_key, NEW.comment, c.search_text, NEW.created_at, NEW.source,
           NEW.cashier_id
    FROM contracts c WHERE c.id = NEW.contract_id"""
PAYER = "UPDATE payment_texts SET payer = NEW.search_text WHERE contract_id = NEW.id"

POSTGRESQL = [
    f"""CREATE FUNCTION payment_texts_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {COPY};
    RETURN NULL;
END $$""",
    """CREATE TRIGGER ledger_entries_payment_texts AFTER INSERT ON ledger_entries
    FOR EACH ROW WHEN (NEW.kind = 'payment') EXECUTE FUNCTION payment_texts_copy()""",
    f"""CREATE FUNCTION payment_texts_payer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {PAYER};
    RETURN NULL;
END $$""",
    """CREATE TRIGGER contracts_payment_texts AFTER UPDATE OF search_text ON contracts
    FOR EACH ROW WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text) EXECUTE FUNCTION payment_texts_payer()""",
]
SQLITE = [
    f"""CREATE TRIGGER ledger_entries_payment_texts AFTER INSERT ON ledger_entries
    FOR EACH ROW WHEN NEW.kind = 'payment' BEGIN {COPY}; END""",
    f"""CREATE TRIGGER contracts_payment_texts AFTER UPDATE OF search_text ON contracts
    FOR EACH ROW WHEN OLD.search_text IS NOT NEW.search_text BEGIN {PAYER}; END""",
]

FILL = """INSERT INTO payment_texts (entry_id, contract_id, key, comment, payer, created_at, source, cashier_id)
    SELECT l.id, l.contract_id, l.idempotency_key, l.comment, c.search_text, l.created_at, l.source, l.cashier_id
    FROM ledger_entries l JOIN contracts c ON c.id = l.contract_id
    WHERE l.kind = 'payment' ORDER BY l.id"""


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "payment_texts",
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False,
                  nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.Column("payer", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("cashier_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["ledger_entries.id"], name=op.f("fk_payment_texts_entry_id_ledger_entries"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_payment_texts")),
    )
    # the rows first, the indexes after (faster than maintaining them row by row), the
    # triggers last: in one transaction on both databases, so no payment is missed between
    # (the new table's foreign key locks ledger_entries against inserts until the end). A payer
    # renamed meanwhile would be: the fill copies contracts' texts as its snapshot has them, and
    # the rename's trigger does not exist yet. So on PostgreSQL contracts are locked against
    # changes first (the lock CREATE TRIGGER takes anyway): renames in flight commit before the
    # fill reads, later ones wait for the migration and fire the trigger. (SQLite: the
    # migration's transaction holds the database's write lock from its first statement.)
    if pg:
        op.execute("LOCK TABLE contracts IN SHARE ROW EXCLUSIVE MODE")
    op.execute(FILL)
    op.create_index(op.f("ix_payment_texts_contract_id"), "payment_texts", ["contract_id"], unique=False)
    if pg:
        op.create_index("ix_payment_texts_payer_trgm", "payment_texts", ["payer"], unique=False,
                        postgresql_using="gin", postgresql_ops={"payer": "gin_trgm_ops"})
    for sql in POSTGRESQL if pg else SQLITE:
        op.execute(sql)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_payment_texts ON ledger_entries")
        op.execute("DROP TRIGGER IF EXISTS contracts_payment_texts ON contracts")
        op.execute("DROP FUNCTION IF EXISTS payment_texts_copy()")
        op.execute("DROP FUNCTION IF EXISTS payment_texts_payer()")
        op.drop_index("ix_payment_texts_payer_trgm", table_name="payment_texts")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_payment_texts")
        op.execute("DROP TRIGGER IF EXISTS contracts_payment_texts")
    op.drop_index(op.f("ix_payment_texts_contract_id"), table_name="payment_texts")
    op.drop_table("payment_texts")
