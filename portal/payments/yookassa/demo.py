"""`make run`: a local ЮKassa (the emulator, its payment page included) and the demo shop
connected to it, unless staff connected the shop to something else (a shop not marked as the
demo's is left alone)."""
from __future__ import annotations

import socket

from ...billing import online_payments as op
from ...extensions import db
from .emulator import YooKassaEmulator

DEMO_SHOP_ID, DEMO_SECRET = "100500", "test_demo_secret_key"
PORT = 8097  # or a free one when another program holds it


def _free(port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def start(portal_url: str) -> YooKassaEmulator | None:
    """Start the emulator and point the demo shop at it (in the caller's app context)."""
    shop = op.shop()
    if shop is not None and not shop.demo_emulator:
        return None
    emu = YooKassaEmulator(port=_free(PORT), shop_id=DEMO_SHOP_ID, secret=DEMO_SECRET,
                           webhook_url=f"{portal_url}/pay/yookassa/notify")
    emu.pending_seconds = 5
    emu.start()
    values = op.shop_values(shop) if shop is not None else op.shop_values(None)
    op.save_shop({**values, "api_url": emu.api_url, "shop_id": DEMO_SHOP_ID, "secret": DEMO_SECRET},
                 actor="devserver", demo_emulator=True)
    db.session.commit()
    return emu
