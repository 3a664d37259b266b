"""Message templates: what a notice says, per event, channel ("email", "sms", "telegram") and
language ("ru", "en").

Every event has built-in defaults here (``DEFAULTS``); an admin may override any of them
(``portal.models.notification_templates``), and ``render`` uses the override when there is one.
Admins write templates, so they are Jinja2 in a *sandboxed* environment: a template sees only
the variables of its event (``variables``) and the filters below, never Python internals.

The context a template sees (``render``'s ``context``) is the notice's ``data`` plus the
subscriber's and contract's fields (``COMMON_VARIABLES``): amounts (``MONEY_VARIABLES``) as
Decimals, so that ``{% if fee %}`` is false for a free item (the notice's "0.00", a non-empty
string, was true: messages read "fee: 0,00 ₽"), days and moments as ISO text. Templates format
them with the filters, which use Babel in the message's language (not the page's: a message is
written in the subscriber's):

- ``{{ amount|money }}``   "1 234,50 ₽" / "RUB 1,234.50" in the operator's currency
- ``{{ until|date }}``     "03.12.2026" / "12/3/26" (``|date("long")`` "3 декабря 2026 г.")
- ``{{ at|datetime }}``    a moment in the operator's zone (BILLING_TZ)
- ``{{ n|days }}``         "5 дней" / "5 days", plural by the language's rules

An unknown variable or a syntax error is refused when the admin saves (``validate``, naming the
field and line), not when a message is sent: at send time every variable of the event exists
(missing ones are None), so ``{% if pay_url %}`` works on a notice that has none.

``pay_url`` (low balance, blocked, promised payment ending) is filled when the message is
rendered (``context_for``): the cabinet's page where the contract is paid online, an absolute
link on PUBLIC_URL (``portal.notifications.links``); none without PUBLIC_URL or online payment.

Compiled templates are kept per process (``_compiled``), keyed by their text: an admin's edit is
a new text, so it is used from the next message on (the overrides are read once per database
session), and nothing needs invalidating; compiling was most of a message's cost.

Bodies: e-mail is plain text with a subject; SMS is short (no subject); Telegram is HTML for
the Bot API's ``parse_mode=HTML`` (values are escaped, ``<b>`` and ``<a>`` may be used).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from babel.units import format_unit
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from ..billing import audit
from ..extensions import db
from ..models import NOTICE_EVENTS, NotificationTemplate, utcnow

log = logging.getLogger(__name__)

CHANNELS = ("email", "sms", "telegram")
LOCALES = ("ru", "en")

# what every message may use besides its event's own data (filled from the subscriber and contract)
COMMON_VARIABLES = ("subscriber_name", "contract_number", "balance", "operator_name")

# the amounts a template sees as Decimals (a zero one is false in ``{% if %}``)
MONEY_VARIABLES = frozenset(("balance", "suggested_payment", "charge", "credit_limit", "amount_to_unblock",
                             "amount", "price", "fee"))

# the events whose messages link to the cabinet's payment page (``pay_url``)
PAY_EVENTS = ("low_balance", "blocked", "promised_expiring")

# each event's own data (the notice's ``data``); the billing side writing a notice fills these
EVENT_VARIABLES: dict[str, tuple[str, ...]] = {
    # two kinds (billing.forecast, billing.grace): the money lasts ``days_left`` more days (until
    # ``runs_out_on``; ``suggested_payment`` covers what is due), or, with ``grace``, the balance
    # is below the limit already and the block comes on ``block_on`` unless ``amount_to_unblock`` is paid
    "low_balance": ("days_left", "threshold", "runs_out_on", "charge_on", "charge", "suggested_payment",
                    "credit_limit", "grace", "block_on", "amount_to_unblock", "pay_url"),
    # blocked for balance on ``blocked_on``: ``amount_to_unblock`` lifts the block
    "blocked": ("blocked_on", "amount_to_unblock", "pay_url"),
    "payment_received": ("amount", "paid_at", "source"),
    # a promised payment of ``amount`` is taken back on ``until`` (``last_day`` its last day in force)
    "promised_expiring": ("amount", "until", "last_day", "pay_url"),
    # ``period``: "month" or "day" (what ``price`` is per)
    "service_assigned": ("service_name", "account_login", "price", "period", "platform", "starts_on", "ends_on"),
    "service_ended": ("service_name", "account_login", "ended_on"),
    "service_bought": ("service_name", "account_login", "price", "period", "platform", "starts_on", "ends_on"),
    "freeze_started": ("account_login", "starts_on", "frozen_until", "fee"),
    "freeze_ended": ("account_login", "ended_on"),
    # staff's own words (portal.notifications.bulk); ``text`` may use the common variables
    "bulk": ("subject", "text"),
}
assert set(EVENT_VARIABLES) == set(NOTICE_EVENTS)


def variables(event: str) -> tuple[str, ...]:
    """The names a template of ``event`` may use."""
    return COMMON_VARIABLES + EVENT_VARIABLES[event]


@dataclass(frozen=True)
class Rendered:
    subject: str  # "" for SMS and Telegram
    body: str


@dataclass(frozen=True)
class Problem:
    """A template an admin wrote that cannot be saved: which field, where, and why."""
    field: str                # "subject", "body" (or a bulk message's "text")
    # "empty", "too_long" (detail: the limit), "nul", "syntax", "unknown" (variables), "render" (fails on sample data)
    kind: str
    detail: str = ""          # the syntax error's text, the unknown names, the failure
    line: int | None = None   # the template's line, when known

    @property
    def message(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        if self.kind == "too_long":
            return f"at most {self.detail} characters"
        return where + {"empty": "required", "nul": "must not contain NUL characters", "syntax": "syntax error: ",
                        "unknown": "unknown variable: ", "render": "fails on sample data: "}[self.kind] + \
            ("" if self.kind in ("empty", "nul") else self.detail)


def _T(subject: str, body: str) -> dict:
    return {"subject": subject, "body": body}


# -- the defaults: (event, channel, locale) -> {"subject", "body"} --------------------------------
DEFAULTS: dict[tuple[str, str, str], dict] = {
    # low balance: a forecast ("lasts N days") or, with ``grace``, the block's day
    ("low_balance", "email", "ru"): _T(
        "{% if grace %}Услуги по договору {{ contract_number }} будут приостановлены {{ block_on|date }}"
        "{% else %}Средств на договоре {{ contract_number }} хватит на {{ days_left|days }}{% endif %}",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "{% if grace %}Баланс договора {{ contract_number }} ({{ balance|money }}) ниже допустимого. "
        "Если не пополнить счёт{% if amount_to_unblock %} на {{ amount_to_unblock|money }}{% endif %}, "
        "услуги будут приостановлены {{ block_on|date }}.\n"
        "{% else %}На балансе договора {{ contract_number }} {{ balance|money }}. По нашему расчёту этих средств "
        "хватит на {{ days_left|days }}{% if runs_out_on %}, до {{ runs_out_on|date }}{% endif %}.\n"
        "{% if suggested_payment %}Чтобы услуги работали без перерыва, рекомендуем пополнить счёт "
        "на {{ suggested_payment|money }}.\n{% endif %}{% endif %}"
        "{% if pay_url %}Оплатить онлайн: {{ pay_url }}\n{% endif %}"
        "\nС уважением,\n{{ operator_name }}"),
    ("low_balance", "email", "en"): _T(
        "{% if grace %}Services on contract {{ contract_number }} will be suspended on {{ block_on|date }}"
        "{% else %}Your balance on contract {{ contract_number }} lasts {{ days_left|days }}{% endif %}",
        "Hello {{ subscriber_name }},\n\n"
        "{% if grace %}The balance of contract {{ contract_number }} ({{ balance|money }}) is below the limit. "
        "Unless you top up{% if amount_to_unblock %} {{ amount_to_unblock|money }}{% endif %}, services will be "
        "suspended on {{ block_on|date }}.\n"
        "{% else %}The balance of contract {{ contract_number }} is {{ balance|money }}. By our estimate it will "
        "last {{ days_left|days }}{% if runs_out_on %}, until {{ runs_out_on|date }}{% endif %}.\n"
        "{% if suggested_payment %}To keep your services running without a break, we suggest topping "
        "up {{ suggested_payment|money }}.\n{% endif %}{% endif %}"
        "{% if pay_url %}Pay online: {{ pay_url }}\n{% endif %}"
        "\nKind regards,\n{{ operator_name }}"),
    ("low_balance", "sms", "ru"): _T(
        "", "{% if grace %}Договор {{ contract_number }}: пополните счёт{% if amount_to_unblock %} на "
            "{{ amount_to_unblock|money }}{% endif %} до {{ block_on|date }}, иначе услуги будут приостановлены."
            "{% else %}Договор {{ contract_number }}: средств хватит на {{ days_left|days }}. "
            "Баланс {{ balance|money }}.{% endif %}"),
    ("low_balance", "sms", "en"): _T(
        "", "{% if grace %}Contract {{ contract_number }}: top up{% if amount_to_unblock %} "
            "{{ amount_to_unblock|money }}{% endif %} by {{ block_on|date }} or services will be suspended."
            "{% else %}Contract {{ contract_number }}: balance {{ balance|money }} lasts {{ days_left|days }}."
            "{% endif %}"),
    ("low_balance", "telegram", "ru"): _T(
        "", "{% if grace %}⚠️ <b>Услуги будут приостановлены {{ block_on|date }}</b>\n"
            "Договор {{ contract_number }}: баланс {{ balance|money }} ниже допустимого."
            "{% if amount_to_unblock %} Пополните счёт на {{ amount_to_unblock|money }}.{% endif %}\n"
            "{% else %}⚠️ <b>Скоро закончатся средства</b>\n"
            "Договор {{ contract_number }}: на балансе {{ balance|money }}, этого хватит на "
            "{{ days_left|days }}{% if runs_out_on %} (до {{ runs_out_on|date }}){% endif %}.\n"
            "{% if suggested_payment %}Рекомендуем пополнить на {{ suggested_payment|money }}.\n{% endif %}"
            "{% endif %}"
            "{% if pay_url %}<a href=\"{{ pay_url }}\">Оплатить онлайн</a>{% endif %}"),
    ("low_balance", "telegram", "en"): _T(
        "", "{% if grace %}⚠️ <b>Services will be suspended on {{ block_on|date }}</b>\n"
            "Contract {{ contract_number }}: balance {{ balance|money }} is below the limit."
            "{% if amount_to_unblock %} Please top up {{ amount_to_unblock|money }}.{% endif %}\n"
            "{% else %}⚠️ <b>Your balance is running low</b>\n"
            "Contract {{ contract_number }}: {{ balance|money }} left, enough for "
            "{{ days_left|days }}{% if runs_out_on %} (until {{ runs_out_on|date }}){% endif %}.\n"
            "{% if suggested_payment %}We suggest topping up {{ suggested_payment|money }}.\n{% endif %}"
            "{% endif %}"
            "{% if pay_url %}<a href=\"{{ pay_url }}\">Pay online</a>{% endif %}"),
    # blocked for balance
    ("blocked", "email", "ru"): _T(
        "Услуги по договору {{ contract_number }} приостановлены",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "Услуги по договору {{ contract_number }} приостановлены: на балансе {{ balance|money }}, "
        "этого недостаточно для их оплаты.\n"
        "{% if amount_to_unblock %}Чтобы возобновить обслуживание, пополните счёт на "
        "{{ amount_to_unblock|money }} или больше — услуги включатся автоматически сразу после "
        "поступления платежа.\n{% endif %}"
        "{% if pay_url %}Оплатить онлайн: {{ pay_url }}\n{% endif %}"
        "\nС уважением,\n{{ operator_name }}"),
    ("blocked", "email", "en"): _T(
        "Services on contract {{ contract_number }} are suspended",
        "Hello {{ subscriber_name }},\n\n"
        "Services on contract {{ contract_number }} are suspended: the balance is {{ balance|money }}, "
        "which does not cover them.\n"
        "{% if amount_to_unblock %}To resume them, pay {{ amount_to_unblock|money }} or more; "
        "services come back on automatically as soon as the payment arrives.\n{% endif %}"
        "{% if pay_url %}Pay online: {{ pay_url }}\n{% endif %}"
        "\nKind regards,\n{{ operator_name }}"),
    ("blocked", "sms", "ru"): _T(
        "", "Договор {{ contract_number }} заблокирован, баланс {{ balance|money }}."
            "{% if amount_to_unblock %} Для включения внесите {{ amount_to_unblock|money }}.{% endif %}"),
    ("blocked", "sms", "en"): _T(
        "", "Contract {{ contract_number }} suspended, balance {{ balance|money }}."
            "{% if amount_to_unblock %} Pay {{ amount_to_unblock|money }} to resume.{% endif %}"),
    ("blocked", "telegram", "ru"): _T(
        "", "⛔ <b>Услуги приостановлены</b>\n"
            "Договор {{ contract_number }}: на балансе {{ balance|money }}.\n"
            "{% if amount_to_unblock %}Для включения пополните счёт на <b>{{ amount_to_unblock|money }}</b> "
            "— услуги включатся автоматически.\n{% endif %}"
            "{% if pay_url %}<a href=\"{{ pay_url }}\">Оплатить онлайн</a>{% endif %}"),
    ("blocked", "telegram", "en"): _T(
        "", "⛔ <b>Services suspended</b>\n"
            "Contract {{ contract_number }}: balance {{ balance|money }}.\n"
            "{% if amount_to_unblock %}Pay <b>{{ amount_to_unblock|money }}</b> to resume; services come "
            "back on automatically.\n{% endif %}"
            "{% if pay_url %}<a href=\"{{ pay_url }}\">Pay online</a>{% endif %}"),
    # payment received
    ("payment_received", "email", "ru"): _T(
        "Платёж {{ amount|money }} зачислен",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "На договор {{ contract_number }} зачислен платёж {{ amount|money }}"
        "{% if paid_at %} ({{ paid_at|datetime }}){% endif %}.\n"
        "Баланс: {{ balance|money }}.\n\n"
        "Спасибо, что вы с нами!\n{{ operator_name }}"),
    ("payment_received", "email", "en"): _T(
        "Payment of {{ amount|money }} received",
        "Hello {{ subscriber_name }},\n\n"
        "A payment of {{ amount|money }} has been credited to contract {{ contract_number }}"
        "{% if paid_at %} ({{ paid_at|datetime }}){% endif %}.\n"
        "Balance: {{ balance|money }}.\n\n"
        "Thank you for staying with us!\n{{ operator_name }}"),
    ("payment_received", "sms", "ru"): _T(
        "", "Платёж {{ amount|money }} зачислен на договор {{ contract_number }}. Баланс {{ balance|money }}."),
    ("payment_received", "sms", "en"): _T(
        "", "Payment {{ amount|money }} credited to contract {{ contract_number }}. Balance {{ balance|money }}."),
    ("payment_received", "telegram", "ru"): _T(
        "", "✅ <b>Платёж зачислен</b>\n"
            "{{ amount|money }} на договор {{ contract_number }}. Баланс: {{ balance|money }}."),
    ("payment_received", "telegram", "en"): _T(
        "", "✅ <b>Payment received</b>\n"
            "{{ amount|money }} to contract {{ contract_number }}. Balance: {{ balance|money }}."),
    # promised payment about to expire
    ("promised_expiring", "email", "ru"): _T(
        "Обещанный платёж по договору {{ contract_number }} истекает {{ until|date }}",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "Срок обещанного платежа {{ amount|money }} по договору {{ contract_number }} истекает "
        "{{ until|date }}. В этот день сумма будет списана с баланса; если средств не хватит, "
        "услуги будут приостановлены.\n"
        "Сейчас на балансе {{ balance|money }}.\n"
        "{% if pay_url %}Оплатить онлайн: {{ pay_url }}\n{% endif %}"
        "\nС уважением,\n{{ operator_name }}"),
    ("promised_expiring", "email", "en"): _T(
        "Promised payment on contract {{ contract_number }} ends {{ until|date }}",
        "Hello {{ subscriber_name }},\n\n"
        "The promised payment of {{ amount|money }} on contract {{ contract_number }} ends on "
        "{{ until|date }}. That day the amount is taken back from the balance; if the balance does "
        "not cover it, services will be suspended.\n"
        "Current balance: {{ balance|money }}.\n"
        "{% if pay_url %}Pay online: {{ pay_url }}\n{% endif %}"
        "\nKind regards,\n{{ operator_name }}"),
    ("promised_expiring", "sms", "ru"): _T(
        "", "Обещанный платёж {{ amount|money }} истекает {{ until|date }}. Пополните счёт "
            "договора {{ contract_number }}."),
    ("promised_expiring", "sms", "en"): _T(
        "", "Promised payment {{ amount|money }} ends {{ until|date }}. Please top up contract "
            "{{ contract_number }}."),
    ("promised_expiring", "telegram", "ru"): _T(
        "", "⏳ <b>Обещанный платёж истекает {{ until|date }}</b>\n"
            "Договор {{ contract_number }}: {{ amount|money }} будет списано с баланса "
            "(сейчас {{ balance|money }}). Пополните счёт, чтобы услуги не приостановились.\n"
            "{% if pay_url %}<a href=\"{{ pay_url }}\">Оплатить онлайн</a>{% endif %}"),
    ("promised_expiring", "telegram", "en"): _T(
        "", "⏳ <b>Promised payment ends {{ until|date }}</b>\n"
            "Contract {{ contract_number }}: {{ amount|money }} will be taken back from the balance "
            "(now {{ balance|money }}). Top up so that services are not suspended.\n"
            "{% if pay_url %}<a href=\"{{ pay_url }}\">Pay online</a>{% endif %}"),
    # service assigned
    ("service_assigned", "email", "ru"): _T(
        "Подключена услуга «{{ service_name }}»",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "По договору {{ contract_number }}{% if account_login %} (учётная запись {{ account_login }}){% endif %} "
        "подключена услуга «{{ service_name }}»{% if starts_on %} с {{ starts_on|date }}{% endif %}."
        "{% if price %} Стоимость: {{ price|money }}"
        "{% if period == \"day\" %} в сутки{% elif period == \"month\" %} в месяц{% endif %}."
        "{% elif price is not none %} Услуга бесплатная.{% endif %}\n\n"
        "С уважением,\n{{ operator_name }}"),
    ("service_assigned", "email", "en"): _T(
        "Service “{{ service_name }}” connected",
        "Hello {{ subscriber_name }},\n\n"
        "The service “{{ service_name }}” has been connected on contract {{ contract_number }}"
        "{% if account_login %} (account {{ account_login }}){% endif %}"
        "{% if starts_on %} from {{ starts_on|date }}{% endif %}."
        "{% if price %} Price: {{ price|money }}"
        "{% if period == \"day\" %} a day{% elif period == \"month\" %} a month{% endif %}."
        "{% elif price is not none %} It is free of charge.{% endif %}\n\n"
        "Kind regards,\n{{ operator_name }}"),
    ("service_assigned", "sms", "ru"): _T(
        "", "Подключена услуга «{{ service_name }}»{% if price %}, {{ price|money }}"
            "{% elif price is not none %}, бесплатно{% endif %}. "
            "Договор {{ contract_number }}."),
    ("service_assigned", "sms", "en"): _T(
        "", "Service \"{{ service_name }}\" connected{% if price %}, {{ price|money }}"
            "{% elif price is not none %}, free of charge{% endif %}. "
            "Contract {{ contract_number }}."),
    ("service_assigned", "telegram", "ru"): _T(
        "", "➕ <b>Подключена услуга «{{ service_name }}»</b>\n"
            "Договор {{ contract_number }}{% if account_login %}, учётная запись {{ account_login }}{% endif %}"
            "{% if starts_on %}, с {{ starts_on|date }}{% endif %}."
            "{% if price %} Стоимость: {{ price|money }}"
        "{% if period == \"day\" %} в сутки{% elif period == \"month\" %} в месяц{% endif %}."
            "{% elif price is not none %} Бесплатно.{% endif %}"),
    ("service_assigned", "telegram", "en"): _T(
        "", "➕ <b>Service “{{ service_name }}” connected</b>\n"
            "Contract {{ contract_number }}{% if account_login %}, account {{ account_login }}{% endif %}"
            "{% if starts_on %}, from {{ starts_on|date }}{% endif %}."
            "{% if price %} Price: {{ price|money }}"
        "{% if period == \"day\" %} a day{% elif period == \"month\" %} a month{% endif %}."
            "{% elif price is not none %} Free of charge.{% endif %}"),
    # service ended
    ("service_ended", "email", "ru"): _T(
        "Услуга «{{ service_name }}» отключена",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "По договору {{ contract_number }}{% if account_login %} (учётная запись {{ account_login }}){% endif %} "
        "отключена услуга «{{ service_name }}»{% if ended_on %} с {{ ended_on|date }}{% endif %}. "
        "Плата за неё больше не списывается.\n\n"
        "С уважением,\n{{ operator_name }}"),
    ("service_ended", "email", "en"): _T(
        "Service “{{ service_name }}” ended",
        "Hello {{ subscriber_name }},\n\n"
        "The service “{{ service_name }}” on contract {{ contract_number }}"
        "{% if account_login %} (account {{ account_login }}){% endif %} has ended"
        "{% if ended_on %} as of {{ ended_on|date }}{% endif %}. It is no longer charged.\n\n"
        "Kind regards,\n{{ operator_name }}"),
    ("service_ended", "sms", "ru"): _T(
        "", "Услуга «{{ service_name }}» отключена{% if ended_on %} с {{ ended_on|date }}{% endif %}. "
            "Договор {{ contract_number }}."),
    ("service_ended", "sms", "en"): _T(
        "", "Service \"{{ service_name }}\" ended{% if ended_on %} {{ ended_on|date }}{% endif %}. "
            "Contract {{ contract_number }}."),
    ("service_ended", "telegram", "ru"): _T(
        "", "➖ <b>Услуга «{{ service_name }}» отключена</b>\n"
            "Договор {{ contract_number }}{% if account_login %}, учётная запись {{ account_login }}{% endif %}"
            "{% if ended_on %}, с {{ ended_on|date }}{% endif %}."),
    ("service_ended", "telegram", "en"): _T(
        "", "➖ <b>Service “{{ service_name }}” ended</b>\n"
            "Contract {{ contract_number }}{% if account_login %}, account {{ account_login }}{% endif %}"
            "{% if ended_on %}, as of {{ ended_on|date }}{% endif %}."),
    # bought on a platform
    ("service_bought", "email", "ru"): _T(
        "Покупка: «{{ service_name }}»",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "Вы подключили «{{ service_name }}»{% if platform %} ({{ platform }}){% endif %}"
        "{% if account_login %} для учётной записи {{ account_login }}{% endif %}"
        "{% if price %} за {{ price|money }}. Сумма списывается с баланса договора "
        "{{ contract_number }}; сейчас на нём {{ balance|money }}.{% else %}"
        "{% if price is not none %} бесплатно{% endif %} по договору {{ contract_number }}.{% endif %}\n"
        "Если вы этого не делали, позвоните нам.\n\n"
        "С уважением,\n{{ operator_name }}"),
    ("service_bought", "email", "en"): _T(
        "Purchase: “{{ service_name }}”",
        "Hello {{ subscriber_name }},\n\n"
        "You bought “{{ service_name }}”{% if platform %} ({{ platform }}){% endif %}"
        "{% if account_login %} for account {{ account_login }}{% endif %}"
        "{% if price %} for {{ price|money }}. It is charged to contract {{ contract_number }}; "
        "its balance is now {{ balance|money }}.{% else %}"
        "{% if price is not none %} free of charge{% endif %} on contract {{ contract_number }}.{% endif %}\n"
        "If this was not you, please call us.\n\n"
        "Kind regards,\n{{ operator_name }}"),
    ("service_bought", "sms", "ru"): _T(
        "", "Договор {{ contract_number }}: подключено «{{ service_name }}»"
            "{% if price %} за {{ price|money }}{% elif price is not none %} бесплатно{% endif %}. "
            "Баланс {{ balance|money }}."),
    ("service_bought", "sms", "en"): _T(
        "", "Contract {{ contract_number }}: bought \"{{ service_name }}\""
            "{% if price %} for {{ price|money }}{% elif price is not none %} free of charge{% endif %}. "
            "Balance {{ balance|money }}."),
    ("service_bought", "telegram", "ru"): _T(
        "", "🛒 <b>Покупка: «{{ service_name }}»</b>{% if platform %} ({{ platform }}){% endif %}\n"
            "{% if price %}Стоимость {{ price|money }}, {% elif price is not none %}Бесплатно, {% endif %}"
            "договор {{ contract_number }}, "
            "баланс {{ balance|money }}.\nЕсли это были не вы, позвоните нам."),
    ("service_bought", "telegram", "en"): _T(
        "", "🛒 <b>Purchase: “{{ service_name }}”</b>{% if platform %} ({{ platform }}){% endif %}\n"
            "{% if price %}Price {{ price|money }}, {% elif price is not none %}Free of charge, {% endif %}"
            "contract {{ contract_number }}, "
            "balance {{ balance|money }}.\nIf this was not you, please call us."),
    # voluntary freeze
    ("freeze_started", "email", "ru"): _T(
        "Обслуживание приостановлено до {{ frozen_until|date }}",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "По вашей просьбе обслуживание{% if account_login %} учётной записи {{ account_login }}{% endif %} "
        "по договору {{ contract_number }} приостановлено до {{ frozen_until|date }} включительно. "
        "За эти дни абонентская плата не списывается{% if fee %}; плата за приостановку — "
        "{{ fee|money }}{% endif %}.\n"
        "Услуги включатся автоматически; возобновить их раньше можно в личном кабинете.\n\n"
        "С уважением,\n{{ operator_name }}"),
    ("freeze_started", "email", "en"): _T(
        "Service paused until {{ frozen_until|date }}",
        "Hello {{ subscriber_name }},\n\n"
        "As you asked, service{% if account_login %} for account {{ account_login }}{% endif %} on "
        "contract {{ contract_number }} is paused until {{ frozen_until|date }} inclusive. "
        "Those days are not charged{% if fee %}; the pause costs {{ fee|money }}{% endif %}.\n"
        "Service resumes by itself; you can resume it earlier in your cabinet.\n\n"
        "Kind regards,\n{{ operator_name }}"),
    ("freeze_started", "sms", "ru"): _T(
        "", "Обслуживание{% if account_login %} {{ account_login }}{% endif %} приостановлено до "
            "{{ frozen_until|date }}. Договор {{ contract_number }}."),
    ("freeze_started", "sms", "en"): _T(
        "", "Service{% if account_login %} {{ account_login }}{% endif %} paused until "
            "{{ frozen_until|date }}. Contract {{ contract_number }}."),
    ("freeze_started", "telegram", "ru"): _T(
        "", "❄️ <b>Обслуживание приостановлено до {{ frozen_until|date }}</b>\n"
            "Договор {{ contract_number }}{% if account_login %}, учётная запись {{ account_login }}{% endif %}. "
            "Абонентская плата за эти дни не списывается{% if fee %}; плата за приостановку "
            "{{ fee|money }}{% endif %}."),
    ("freeze_started", "telegram", "en"): _T(
        "", "❄️ <b>Service paused until {{ frozen_until|date }}</b>\n"
            "Contract {{ contract_number }}{% if account_login %}, account {{ account_login }}{% endif %}. "
            "Those days are not charged{% if fee %}; the pause costs {{ fee|money }}{% endif %}."),
    ("freeze_ended", "email", "ru"): _T(
        "Обслуживание возобновлено",
        "Здравствуйте, {{ subscriber_name }}!\n\n"
        "Обслуживание{% if account_login %} учётной записи {{ account_login }}{% endif %} по договору "
        "{{ contract_number }} возобновлено{% if ended_on %} {{ ended_on|date }}{% endif %}. "
        "Баланс: {{ balance|money }}.\n\n"
        "С возвращением!\n{{ operator_name }}"),
    ("freeze_ended", "email", "en"): _T(
        "Service resumed",
        "Hello {{ subscriber_name }},\n\n"
        "Service{% if account_login %} for account {{ account_login }}{% endif %} on contract "
        "{{ contract_number }} has resumed{% if ended_on %} on {{ ended_on|date }}{% endif %}. "
        "Balance: {{ balance|money }}.\n\n"
        "Welcome back!\n{{ operator_name }}"),
    ("freeze_ended", "sms", "ru"): _T(
        "", "Договор {{ contract_number }}: обслуживание{% if account_login %} {{ account_login }}{% endif %} "
            "возобновлено. "
            "Баланс {{ balance|money }}."),
    ("freeze_ended", "sms", "en"): _T(
        "", "Contract {{ contract_number }}: service{% if account_login %} {{ account_login }}{% endif %} resumed. "
            "Balance {{ balance|money }}."),
    ("freeze_ended", "telegram", "ru"): _T(
        "", "▶️ <b>Обслуживание возобновлено</b>\n"
            "Договор {{ contract_number }}{% if account_login %}, учётная запись {{ account_login }}{% endif %}. "
            "Баланс: {{ balance|money }}."),
    ("freeze_ended", "telegram", "en"): _T(
        "", "▶️ <b>Service resumed</b>\n"
            "Contract {{ contract_number }}{% if account_login %}, account {{ account_login }}{% endif %}. "
            "Balance: {{ balance|money }}."),
    # a staff message: its own subject and text (already personalised by ``render``)
    ("bulk", "email", "ru"): _T("{{ subject }}", "{{ text }}\n\n—\n{{ operator_name }}"),
    ("bulk", "email", "en"): _T("{{ subject }}", "{{ text }}\n\n—\n{{ operator_name }}"),
    ("bulk", "sms", "ru"): _T("", "{{ text }}"),
    ("bulk", "sms", "en"): _T("", "{{ text }}"),
    ("bulk", "telegram", "ru"): _T("", "{% if subject %}<b>{{ subject }}</b>\n{% endif %}{{ text }}"),
    ("bulk", "telegram", "en"): _T("", "{% if subject %}<b>{{ subject }}</b>\n{% endif %}{{ text }}"),
}
assert set(DEFAULTS) == {(e, c, lang) for e in NOTICE_EVENTS for c in CHANNELS for lang in LOCALES}


# -- formatting in the message's language ---------------------------------------------------------

def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None


def _settings() -> tuple[str, str, str]:
    """The operator's currency, zone and name, from the app's settings when there is an app."""
    try:
        from flask import current_app
        cfg = current_app.config
    except RuntimeError:  # outside an app context (a script): the defaults of portal.config
        cfg = {}
    return (cfg.get("BILLING_CURRENCY") or "RUB", cfg.get("BILLING_TZ") or "Europe/Moscow",
            cfg.get("OPERATOR_NAME") or "")


def _filters(locale: str, currency: str, tz: str) -> dict:
    zone = ZoneInfo(tz)

    # a value of an unexpected shape is shown as it came (as the pages' `money` does), never an error
    def money(value) -> str:
        amount = _decimal(value)
        return (str(value) if value is not None else "") if amount is None \
            else format_currency(amount, currency, locale=locale)

    def to_date(value, format: str = "short") -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value) if len(value) > 10 else date.fromisoformat(value)
        if isinstance(value, datetime):
            value = value.astimezone(zone).date() if value.tzinfo else value.date()
        return format_date(value, format if format in ("short", "medium", "long") else "short", locale=locale)

    def to_datetime(value, format: str = "short") -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return format_datetime(value, format if format in ("short", "medium", "long") else "short",
                               tzinfo=zone, locale=locale)

    def days(value) -> str:
        if value is None or value == "":
            return ""
        try:
            return format_unit(int(value), "duration-day", length="long", locale=locale)
        except (TypeError, ValueError):
            return str(value)

    return {"money": money, "date": to_date, "datetime": to_datetime, "days": days}


# the most a template may build with * or ** (a message is a few kilobytes; "x" * 10**9 is not)
MAX_PRODUCT = 100_000


class _Environment(SandboxedEnvironment):
    """A sandbox that also refuses underscored names however they are reached (``attr``, ``[]``)
    and products too large for a message (a typo in an admin's template must not eat the worker)."""

    intercepted_binops = frozenset(["*", "**"])

    def is_safe_attribute(self, obj, attr, value):
        return not str(attr).startswith("_") and super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            sizes = [len(v) for v in (left, right) if isinstance(v, (str, list, tuple))]
            counts = [abs(v) for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
            if sizes and counts and sizes[0] * counts[0] > MAX_PRODUCT:
                raise SecurityError("result too large")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=32)
def _environment(locale: str, channel: str, currency: str, tz: str) -> SandboxedEnvironment:
    env = _Environment(undefined=StrictUndefined, autoescape=(channel == "telegram"),
                       keep_trailing_newline=False)
    env.filters.update(_filters(locale, currency, tz))
    return env


# -- rendering ------------------------------------------------------------------------------------

# The overrides, read once per database session (a request, or a delivery job's batch of
# thousands of messages), not once per message; a save or a reset in the session forgets them.
_OVERRIDES_KEY = "notification_template_overrides"


def _all_overrides() -> dict:
    rows = db.session.info.get(_OVERRIDES_KEY)
    if rows is None:
        rows = {(r.event, r.channel, r.locale): {"subject": r.subject or "", "body": r.body}
                for r in db.session.execute(db.select(
                    NotificationTemplate.event, NotificationTemplate.channel, NotificationTemplate.locale,
                    NotificationTemplate.subject, NotificationTemplate.body))}
        db.session.info[_OVERRIDES_KEY] = rows
    return rows


def forget_overrides() -> None:
    """Read the overrides again on the next render (after a save or a reset)."""
    db.session.info.pop(_OVERRIDES_KEY, None)


def template_for(event: str, channel: str, locale: str) -> dict:
    """The template in force: the admin's override, else the built-in default."""
    return _all_overrides().get((event, channel, locale)) or DEFAULTS[(event, channel, locale)]


def _check(event: str, channel: str, locale: str) -> None:
    if event not in EVENT_VARIABLES:
        raise ValueError(f"unknown notice event {event!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}")


def _full_context(event: str, context: dict) -> dict:
    """Every variable of the event present (None when the notice has none), plus the operator;
    amounts as Decimals (one that is not a number stays as it came: ``money`` shows it so)."""
    full = dict.fromkeys(variables(event))
    full["operator_name"] = _settings()[2]
    for k, v in context.items():
        if k in full and v is not None:
            full[k] = (_decimal(v) if k in MONEY_VARIABLES and _decimal(v) is not None else v)
    return full


# the most compiled texts a process keeps: the defaults (~100), the overrides, recent bulk texts
COMPILED_MAX = 1024


@lru_cache(maxsize=COMPILED_MAX)
def _compiled(source: str, locale: str, channel: str, currency: str, tz: str):
    """A template text compiled once per process: keyed by the text itself, so an edited
    override (another text) is compiled afresh and an old one simply falls out of use."""
    return _environment(locale, channel, currency, tz).from_string(source)


def render_text(source: str, event: str, channel: str, locale: str, context: dict) -> str:
    """One template text rendered in the sandbox (a TemplateError when it is broken)."""
    currency, tz, _ = _settings()
    return _compiled(source, locale, channel, currency, tz).render(_full_context(event, context)).strip()


def render(event: str, channel: str, locale: str, context: dict, template: dict | None = None) -> Rendered:
    """The message for one notice: ``context`` is the notice's data plus the subscriber's and
    contract's fields (``COMMON_VARIABLES``). ``template`` ({"subject", "body"}) renders a draft
    instead of the template in force (the admin's preview)."""
    _check(event, channel, locale)
    source = template or template_for(event, channel, locale)
    context = dict(context)
    if event == "bulk" and context.get("text"):
        # staff's text may itself name the subscriber ("{{ subscriber_name }}"); a bulk message
        # is plain text everywhere, so its text is rendered unescaped, then escaped for Telegram
        text = render_text(context["text"], "bulk", "sms", locale, context)
        context["text"] = text
        if context.get("subject"):
            context["subject"] = render_text(context["subject"], "bulk", "sms", locale, context)
    try:
        return _render_source(source, event, channel, locale, context)
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError):
        default = DEFAULTS[(event, channel, locale)]
        if template is not None or source is default:
            raise
        # an admin's template that passed validation but fails on this notice's data (a value of
        # a shape the samples did not have): the subscriber still gets the built-in message
        log.exception("notification template %s/%s/%s failed; the default is sent", event, channel, locale)
        return _render_source(default, event, channel, locale, context)


def _render_source(source: dict, event: str, channel: str, locale: str, context: dict) -> Rendered:
    subject = render_text(source.get("subject") or "", event, channel, locale, context) if channel == "email" else ""
    body = render_text(source["body"], event, channel, locale, context)
    return Rendered(subject=subject, body=body)


# -- validation (when an admin saves) -------------------------------------------------------------

def sample_context(event: str) -> dict:
    """Plausible values of every variable, for validating a template and for a preview without data."""
    sample = {
        "subscriber_name": "Иванов Иван Иванович", "contract_number": "100-0001", "balance": "120.50",
        "days_left": 3, "runs_out_on": date.today().isoformat(), "suggested_payment": "650.00",
        "pay_url": "https://example.invalid/pay", "amount_to_unblock": "530.00", "amount": "500.00",
        "paid_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "until": date.today().isoformat(), "service_name": "Интернет 100", "price": "650.00",
        "account_login": "ivanov", "starts_on": date.today().isoformat(), "ended_on": date.today().isoformat(),
        "platform": "Смотрёшка", "frozen_until": date.today().isoformat(), "fee": "50.00",
        "threshold": 3, "charge_on": date.today().isoformat(), "charge": "650.00", "credit_limit": "0.00",
        "grace": None, "block_on": date.today().isoformat(), "blocked_on": date.today().isoformat(),
        "source": "online", "last_day": date.today().isoformat(), "period": "month", "ends_on": None,
        "subject": "Плановые работы", "text": "Уважаемые абоненты! Ночью проводим плановые работы.",
    }
    return {k: sample[k] for k in variables(event) if k in sample}


# the longest subject and text a template may have (an e-mail's text is the longest message)
SUBJECT_MAX = 200
BODY_MAX = 5000


def check_source(source: str, field: str, event: str, channel: str, allowed: set[str],
                 max_len: int | None = None) -> list[Problem]:
    """What is wrong with one template text: empty, too long, a NUL, a syntax error (with its
    line), a variable not in ``allowed``, or a failure rendering the event's sample data in
    either language."""
    if not source.strip():
        return [Problem(field, "empty")]
    limit = max_len or (SUBJECT_MAX if field == "subject" else BODY_MAX)
    if len(source) > limit:
        return [Problem(field, "too_long", str(limit))]
    if "\x00" in source:
        return [Problem(field, "nul")]
    currency, tz, _ = _settings()
    env = _environment("ru", channel, currency, tz)
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return [Problem(field, "syntax", exc.message or str(exc), exc.lineno)]
    unknown = sorted(meta.find_undeclared_variables(ast) - allowed)
    if unknown:
        line = min((n.lineno for n in ast.find_all(nodes.Name) if n.name in unknown), default=None)
        return [Problem(field, "unknown", ", ".join(unknown), line)]
    samples = [sample_context(event)]
    if event == "low_balance":  # the grace kind takes the template's other branch
        samples.append({**samples[0], "grace": True})
    for locale in LOCALES:
        for sample in samples:
            try:
                render_text(source, event, channel, locale, sample)
            except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
                # (a SecurityError too: ``''.__class__`` and the like never pass)
                return [Problem(field, "render", str(exc), _error_line(exc))]
    return []


def validate(event: str, channel: str, template: dict) -> list[Problem]:
    """What is wrong with an admin's template, field by field (the subject for e-mail only)."""
    _check(event, channel, "ru")
    allowed = set(variables(event))
    fields = ("subject", "body") if channel == "email" else ("body",)
    return [p for field in fields for p in check_source(template.get(field) or "", field, event, channel, allowed)]


def validate_bulk_text(text: str, field: str = "text", max_len: int | None = None) -> list[Problem]:
    """Staff's bulk text may name the subscriber's and contract's fields, nothing else."""
    return check_source(text, field, "bulk", "sms", set(COMMON_VARIABLES), max_len)


def _error_line(exc: Exception) -> int | None:
    """The template line a runtime error came from (Jinja keeps it in the traceback)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def context_for(subscriber, contract=None, data: dict | None = None, event: str | None = None) -> dict:
    """A message's context: the notice's data and the subscriber's and contract's fields; for
    an ``event`` of PAY_EVENTS, ``pay_url``: the contract's online payment page (None when
    there is no link to give: ``links.pay_url``); a platform by its title."""
    context = dict(data or {})
    context["subscriber_name"] = subscriber.full_name
    if contract is not None:
        context.update(contract_number=contract.number, balance=str(contract.balance))
    if event in PAY_EVENTS:
        from .links import pay_url

        context["pay_url"] = pay_url(contract) if contract is not None else None
    if context.get("platform"):  # the platform's name as people know it ("«Смотрёшка»"), not its code
        from ..platforms import registry

        if context["platform"] in registry.known_platforms():
            context["platform"] = registry.get(context["platform"]).title
    return context


# -- admin overrides ------------------------------------------------------------------------------

def save_override(event: str, channel: str, locale: str, template: dict, *, actor: str) -> NotificationTemplate:
    """Store an admin's template (validated by the caller with ``validate``) in the caller's
    transaction; it replaces the default from the next message on."""
    _check(event, channel, locale)
    row = db.session.scalars(db.select(NotificationTemplate).filter_by(
        event=event, channel=channel, locale=locale)).first()
    before = {"subject": row.subject, "body": row.body} if row else None
    row = row or NotificationTemplate(event=event, channel=channel, locale=locale)
    row.subject = (template.get("subject") or "") if channel == "email" else ""
    row.body = template["body"]
    row.updated_by = actor
    row.updated_at = utcnow()
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "notification_template.save", row, f"{event} {channel} {locale}", before=before,
                 after={"subject": row.subject, "body": row.body})
    forget_overrides()
    return row


def reset_override(event: str, channel: str, locale: str, *, actor: str) -> bool:
    """Back to the built-in default; False when there was no override."""
    _check(event, channel, locale)
    row = db.session.scalars(db.select(NotificationTemplate).filter_by(
        event=event, channel=channel, locale=locale)).first()
    if row is None:
        return False
    audit.record(actor, "notification_template.reset", row, f"{event} {channel} {locale}",
                 before={"subject": row.subject, "body": row.body})
    db.session.delete(row)
    db.session.flush()
    forget_overrides()
    return True
