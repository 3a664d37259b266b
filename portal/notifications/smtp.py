"""E-mail over SMTP: STARTTLS (587), implicit TLS (465) or none (a relay on the local network).

smtplib's errors are sorted the SMTP way: a 5xx refusal of the recipient is the recipient's
(not retried); a 4xx, a refused connection or a TLS failure is retried. The password goes only
to the server's AUTH and never into an error text."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr

from .channels import Channel
from .senders import SendError, Sent


def tls_context() -> ssl.SSLContext:
    """The server's certificate is checked against the system's CAs (SSL_CERT_FILE overrides
    them, as for any OpenSSL program: a relay with a private CA, and the tests)."""
    return ssl.create_default_context()


def send(channel: Channel, to: str, subject: str, body: str) -> Sent:
    msg = EmailMessage()
    name, address = parseaddr(channel.get("sender"))
    msg["From"] = formataddr((name, address)) if name else address
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
    msg.set_content(body)
    host, port, security = channel.get("host"), int(channel.get("port")), channel.get("security")
    try:
        if security == "ssl":
            smtp = smtplib.SMTP_SSL(host, port, timeout=channel.timeout, context=tls_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=channel.timeout)
        with smtp:
            if security == "starttls":
                smtp.starttls(context=tls_context())
            if channel.get("login"):
                smtp.login(channel.get("login"), channel.secret or "")
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as e:
        code, text = next(iter(e.recipients.values()))
        raise SendError(f"{code}: {_text(text)}", retry=not 500 <= code < 600) from None
    except smtplib.SMTPResponseException as e:
        raise SendError(f"{e.smtp_code}: {_text(e.smtp_error)}", retry=True) from None
    except (smtplib.SMTPException, OSError) as e:
        raise SendError(f"{type(e).__name__}: {e}".replace(channel.secret or "\0", "***")) from None
    return Sent(msg["Message-ID"])


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
