"""Demo data for ``flask demo load``: a department and two data centers (idempotent). The
handler itself is what a newcomer creates in the admin, against the emulator ``make run``
starts (the handler form shows its address and demo credentials)."""
from __future__ import annotations

from sqlalchemy import func, select

from ...extensions import db
from ...models import DataCenter, Department
from .handlers import save_named


def moved(old_url: str, new_url: str) -> None:
    """Handlers made against the demo seller follow it to its new port (the caller commits)."""
    from sqlalchemy import update

    from ...models import BmHandler

    db.session.execute(update(BmHandler).where(BmHandler.url == old_url).values(url=new_url))


def load() -> None:
    if db.session.scalar(select(func.count()).select_from(Department)):
        return
    save_named(Department, "Отдел хостинга", actor="demo")
    for name in ("Москва", "Амстердам"):
        save_named(DataCenter, name, actor="demo")
