"""Notifications: the read side of billing's notices (``portal.models.notices``).

New notices are rendered per channel and language (``templates``), filtered by the
subscriber's preferences, and delivered through RQ with retries — e-mail over SMTP, SMS through
an HTTP gateway, Telegram through the Bot API — each with a local emulator, like the platforms.
Sits in the platforms' layer (``.importlinter``): it reads billing, billing never imports it.
"""
