"""Migration 483b394a5260 (issue 18 part 2): the ЮKassa shop id of a shop saved before it is
encrypted on the way up, with the key the portal reads it with, and plain again on the way down."""
from __future__ import annotations

from sqlalchemy import create_engine, text

from portal.billing import online_payments as op
from portal.billing.crypto import encrypt
from portal.config import normalize_db_url
from portal.models import OnlineShop
from tests.helpers import flask_db, scratch_database

BEFORE, AFTER = "2629172f3048", "483b394a5260"
SHOP_ID, SECRET = "634521", "live_Old-Secret-7"


def test_a_shop_saved_before_keeps_its_id_encrypted_and_gets_it_back_on_downgrade(app, tmp_path):
    """A shop saved with a plain shop id: after the upgrade does its row hold the id nowhere in
    plain text, does the portal read the same id (and the old secret) back, and does a downgrade
    give the plain id back?"""
    url = scratch_database("online_shop_migration", tmp_path)
    flask_db(url, "upgrade", BEFORE, check=True)
    engine = create_engine(normalize_db_url(url))
    with app.app_context():
        secret_enc = encrypt(SECRET)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO online_shops (id, kind, api_url, shop_id, secret_enc, vat_code, receipt, payment_subject, "
            "payment_mode, min_sum, max_sum, timeout, enabled, demo_emulator, updated_at) VALUES (1, 'yookassa', "
            "'https://api.yookassa.ru/v3', :shop_id, :secret_enc, 4, TRUE, 'service', 'full_prepayment', 1000, "
            "1500000, 10, TRUE, FALSE, CURRENT_TIMESTAMP)"), {"shop_id": SHOP_ID, "secret_enc": secret_enc})
    flask_db(url, "upgrade", AFTER, check=True)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM online_shops")).mappings().one()
    assert "shop_id" not in row and not any(SHOP_ID in str(value) for value in row.values())
    with app.app_context():
        shop = OnlineShop(shop_id_enc=row["shop_id_enc"], secret_enc=row["secret_enc"])
        assert op.shop_id_of(shop) == SHOP_ID
        assert row["secret_enc"] == secret_enc  # the secret is left as it was
    flask_db(url, "downgrade", BEFORE, check=True)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT shop_id, secret_enc FROM online_shops")).one() == (SHOP_ID, secret_enc)
    engine.dispose()
