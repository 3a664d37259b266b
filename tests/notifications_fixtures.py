"""Fixtures of the notification tests: a real SMTP server (aiosmtpd) with STARTTLS and AUTH on a
certificate of the test's own, the SMS gateway and Telegram Bot API emulators over HTTP, each
with its channel stored (secrets encrypted). Loaded for every test by conftest's ``pytest_plugins``;
a Redis server of the test's own is ``own_redis`` (tests/platform_fixtures.py)."""
from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

import pytest

from portal.extensions import db
from portal.notifications import channels
from portal.notifications.sms_emulator import SmsGateway
from portal.notifications.telegram_emulator import TelegramBotApi
from tests.helpers import free_port

SMTP_LOGIN, SMTP_PASSWORD = "portal", "smtp-Pa55word"
SMS_API_ID = "A1B2C3D4-sms-api-id"
BOT_TOKEN, BOT_NAME = "777000:test-bot-token", "portal_test_bot"


def _certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 / localhost: (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Mailbox:
    """aiosmtpd's handler: keeps every message accepted; refuses recipients in ``refuse``; answers
    the next DATA commands with ``at_data``'s replies (a content filter's 554, a 451)."""

    def __init__(self):
        self.messages: list[dict] = []
        self.refuse: set[str] = set()
        self.at_data: list[str] = []  # replies to the next DATA commands instead of taking the message

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        from email import message_from_bytes, policy

        if self.at_data:
            return self.at_data.pop(0)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": msg["Subject"],
                              "body": msg.get_content(), "tls": tls,
                              "login": session.auth_data.login if session.authenticated else None})
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(ctx, tmp_path, monkeypatch):
    """A real SMTP server on 127.0.0.1 requiring STARTTLS before AUTH, with the e-mail channel
    stored (STARTTLS, login and password). The server's certificate is the trusted one for this
    test (SSL_CERT_FILE, as an operator would point it at a private CA)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert_file, key_file = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == SMTP_LOGIN.encode() and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
                            auth_require_tls=True, authenticator=authenticate, server_hostname="localhost")
    controller.start()
    box.port = controller.port
    box.controller = controller
    channels.save("email", {"host": "127.0.0.1", "port": str(controller.port), "security": "starttls",
                            "login": SMTP_LOGIN, "password": SMTP_PASSWORD, "sender": "Провайдер <billing@isp.test>",
                            "rate": "50", "timeout": "10", "enabled": True}, actor="test")
    db.session.commit()
    yield box
    controller.stop()


@pytest.fixture
def sms_gateway(ctx):
    gw = SmsGateway(api_id=SMS_API_ID, senders=("", "ISP")).start()
    channels.save("sms", {"api_url": gw.url, "api_id": SMS_API_ID, "sender": "ISP", "rate": "50", "timeout": "5",
                          "enabled": True}, actor="test")
    db.session.commit()
    yield gw
    gw.stop()


@pytest.fixture
def telegram_bot(ctx):
    bot = TelegramBotApi(token=BOT_TOKEN, username=BOT_NAME).start()
    channels.save("telegram", {"api_url": bot.url, "token": BOT_TOKEN, "bot_username": BOT_NAME, "rate": "50",
                               "timeout": "5", "enabled": True}, actor="test")
    db.session.commit()
    yield bot
    bot.stop()


def forecast_warned_pair(today, phones: str, key: str) -> list:
    """Two contracts with 500.00 paid and a 450.00 monthly service, whose low-balance forecast
    warnings (thresholds 7, 3, 1) were recorded on ``today`` and prepared as queued SMS; phones
    ``<phones>0`` and ``<phones>1``, payment keys ``<key>0``, ``<key>1``."""
    from decimal import Decimal

    from portal.billing import clock, forecast, ledger
    from portal.notifications import delivery
    from tests.builders import gen_account, gen_contract, gen_service, gen_subscriber

    forecast.save_settings({"thresholds": "7, 3, 1", "enabled": True}, actor="t")
    db.session.commit()
    made = []
    for n in range(2):
        c = gen_contract(gen_subscriber(phones=[f"{phones}{n}"]))
        with clock.as_of(today):
            ledger.payment(c.id, Decimal("500.00"), actor="t", external_id=f"{key}{n}")
            db.session.commit()
            gen_account(contract=c, services=[gen_service("450.00", charge_mode="monthly_advance")])
        made.append(c)
    with clock.as_of(today):
        assert forecast.warn(today) == 2
        db.session.commit()
        delivery.prepare()
    return made
