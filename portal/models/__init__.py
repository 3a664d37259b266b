"""All models, importable from one place (Alembic sees every table through this module)."""
from .accounts import (  # noqa: F401
    ACCOUNT_STATUSES,
    BLOCK_REASONS,
    EXTRA_FIELD_TYPES,
    SERVICE_STATES,
    Account,
    AssignedService,
    ExtraFieldDefinition,
    ExtraFieldValue,
    account_multi_tariffs,
)
from .audit import AuditEntry  # noqa: F401
from .base import Money, from_minor, to_minor, utcnow  # noqa: F401
from .billmanager import (  # noqa: F401
    BM_SERVICE_STATES,
    BM_WAIT_REASONS,
    BmHandler,
    BmService,
    BmTariff,
    BmTariffHandler,
    DataCenter,
    Department,
    Task,
)
from .catalog import (  # noqa: F401
    AGENT_KINDS,
    CHARGE_MODES,
    CHARGE_PERIODS,
    IPTV_KINDS,
    TARIFF_KINDS,
    Agent,
    CatalogService,
    Tariff,
    tariff_services,
)
from .forecast import ForecastSettings  # noqa: F401
from .freeze import FREEZE_STATES, Freeze, FreezeRule, GraceRule  # noqa: F401
from .intercom import IntercomAttachment, IntercomProfile  # noqa: F401
from .jobs import JOB_STATUSES, JobRun  # noqa: F401
from .ledger import LEDGER_KINDS, LEDGER_REASONS, ChargePeriod, ChargeRun, LedgerEntry  # noqa: F401
from .notices import NOTICE_EVENTS, Notice  # noqa: F401
from .notification_templates import MESSAGE_CHANNELS, MESSAGE_LOCALES, BulkMessage, NotificationTemplate  # noqa: F401
from .notifications import (  # noqa: F401
    CHANNEL_KINDS,
    DELIVERY_STATES,
    NotificationChannel,
    NotificationDelivery,
    NotificationPreference,
)
from .online_payments import ONLINE_PAYMENT_STATES, OnlinePayment, OnlineShop  # noqa: F401
from .payment_texts import PaymentText  # noqa: F401
from .payments import ACCOUNT_FIELDS, PROVIDER_RESULTS, AgentPayment, PaymentAgent, ProviderCall  # noqa: F401
from .platforms import SYNC_STATES, OutboxEvent, PlatformConnection, SyncState  # noqa: F401
from .promised import AMOUNT_MODES, PROMISED_STATES, PromisedPayment, PromisedRule, promised_rule_tariffs  # noqa: F401
from .search import install as _install_search  # noqa: E402
from .smotreshka import DRIFT_KINDS, UPSALE_STATES, SmotreshkaCall, SmotreshkaDrift, SmotreshkaUpsale  # noqa: F401
from .staff import ROLES, ApiToken, StaffUser, hash_token  # noqa: F401
from .stalker import StalkerBinding, StalkerChannel, StalkerSnapshot, StalkerSnapshotRow, StalkerStb, StalkerTvId  # noqa: F401
from .stalker_catalog import StalkerImportedTariff  # noqa: F401
from .statements import BANK_PAYMENT_STATES, MATCH_KINDS, STATEMENT_STATES, BankPayment, BankStatement  # noqa: F401
from .subscribers import SUBSCRIBER_KINDS, Contract, Subscriber  # noqa: F401

_install_search()
