"""ЮKassa (API v3): the thin client (client.py), what the cabinet, the webhook and staff ask of
it (service.py) and a local stand-in with its own payment page (emulator.py).

Not the official ``yookassa`` SDK: it keeps the shop's credentials in a process-wide
``Configuration`` (one shop per process, set before each call if there were several), calls
through its own ``requests`` use with its own timeouts and retries, and records nothing. The
client here is about a hundred lines on platforms/http.HttpClient: per-shop credentials read
from the database, our timeout, every call in the audit log with the secret redacted."""
