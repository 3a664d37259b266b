"""E-mail over SMTP: STARTTLS (587), implicit TLS (465) or none (a relay on the local network).

smtplib's errors are sorted the SMTP way: a 5xx refusal of the recipient is the recipient's, a 5xx
that RFC 3463 puts on the message itself (its content, its size: ``message_refused``) the
message's (neither retried); a 4xx, any other 5xx (sender, authentication, policy, quota: the
channel's), a refused connection or a TLS failure is retried. A timeout or a dropped
connection once the message's DATA was sent leaves it unknown whether the server took it
(``maybe_sent``: sent again at most once). The password goes only to the server's AUTH: every
error text passes through ``redact``, which hides it as typed and in its base64 forms (AUTH
LOGIN's, AUTH PLAIN's), in case a server echoes what it was sent."""
from __future__ import annotations

import base64
import re
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
    smtp = None
    at_data = False  # the DATA command went out: from here on the server may take the message

    def data(content):
        nonlocal at_data
        at_data = True
        return smtplib.SMTP.data(smtp, content)

    try:
        if security == "ssl":
            smtp = smtplib.SMTP_SSL(host, port, timeout=channel.timeout, context=tls_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=channel.timeout)
        if security == "starttls":
            smtp.starttls(context=tls_context())
        if channel.get("login"):
            smtp.login(channel.get("login"), channel.secret or "")
        smtp.data = data  # send_message -> sendmail -> self.data: note the moment
        smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as e:
        code, text = next(iter(e.recipients.values()))
        raise SendError(redact(channel, f"{code}: {_text(text)}"), retry=not 500 <= code < 600) from None
    except smtplib.SMTPResponseException as e:  # the server's answer: it did not take the message
        text = _text(e.smtp_error)
        raise SendError(redact(channel, f"{e.smtp_code}: {text}"),
                        retry=not message_refused(e.smtp_code, text)) from None
    except (smtplib.SMTPException, OSError) as e:
        raise SendError(redact(channel, f"{type(e).__name__}: {e}"), maybe_sent=at_data) from None
    finally:
        if smtp is not None:
            smtp.close()  # no QUIT: the message is taken (or not) by now; a slow QUIT must not fail it
    return Sent(msg["Message-ID"])


_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def message_refused(code: int, text: str) -> bool:
    """Is this refusal of the message itself, for good (sending it again would be refused
    again)? Only what RFC 3463 says is the message: its content or media (5.6.x), its size
    (5.3.4, 5.2.3; a server without enhanced codes: 552, also SIZE refused at MAIL FROM). A
    5xx about the sender, authentication, policy or quotas (5.7.x, 5.4.x, 5.5.x, a DMARC or
    blocklist refusal, a daily quota) is the channel's, for staff or time to fix: retried."""
    if not 500 <= code < 600:
        return False
    m = _ENHANCED.match(text or "")
    if m is None:
        return code == 552
    subject, detail = int(m.group(2)), int(m.group(3))
    return m.group(1) == "5" and (subject == 6 or (subject, detail) in ((3, 4), (2, 3)))


def redact(channel: Channel, text: str) -> str:
    """``text`` without the password: as typed, base64 (AUTH LOGIN) and AUTH PLAIN's base64 of
    ``\\0login\\0password`` (also with the login as the authorization id)."""
    password = channel.secret or ""
    if not password:
        return text
    login = channel.get("login") or ""
    forms = {password, _b64(password)}
    for plain in (f"\0{login}\0{password}", f"{login}\0{login}\0{password}"):
        forms.add(_b64(plain))
        forms.add(_b64(plain).rstrip("="))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
