"""Every periodic job, in one plain list with stable names (a redeploy replaces a schedule,
never adds one): ``python -m jobs.scheduler`` registers them, the jobs page
(portal/admin/jobs.py) shows them. Jobs are declared here and nowhere else, so platforms never
import ``jobs``; a platform's settings (portal/platforms/<name>/settings.py) say when its jobs
run where the operator may choose. Cron times are in BILLING_TZ (see jobs/scheduler.py)."""
from __future__ import annotations

from portal.platforms.smotreshka.settings import resync_crons
from portal.platforms.stalker.settings import refresh_interval

from . import billing, billmanager, freeze, intercom, notifications, payments, promised, smotreshka, stalker, sync
from . import forecast as warnings


def periodic(config) -> list[dict]:
    """rq cron entries (``CronScheduler.register`` keywords) for this configuration."""
    return [
        {"name": "charge-run", "func": billing.charge_today, "queue_name": "default", "cron": "5 0 * * *"},
        {"name": "full-reconcile", "func": sync.reconcile_all, "queue_name": "low", "cron": "30 3 * * *"},
        # promised payments past their last day go back; hourly, the day's first at 00:01, before
        # the 00:05 charge run, so a day after the promise is not charged on lent money
        {"name": "promised-return", "func": promised.return_promised, "queue_name": "default", "cron": "1 * * * *"},
        # voluntary freezes past their last day end (00:02, before the charge run, so the day
        # after a freeze is charged as a day in service); hourly again in case a run was missed
        {"name": "freeze-end", "func": freeze.end_freezes, "queue_name": "default", "cron": "2 * * * *"},
        # BILLmanager reselling: the order poller; orders that could not go out (seller down,
        # balance unreadable or short) go again when due; the renewal after the charge run;
        # the handlers' balances twice a day
        {"name": "billmanager-poll", "func": billmanager.poll, "queue_name": "default", "interval": 300},
        {"name": "billmanager-retry-orders", "func": billmanager.retry_orders, "queue_name": "high",
         "interval": int(config["SWEEP_INTERVAL"])},
        {"name": "billmanager-renew", "func": billmanager.renew_due, "queue_name": "default", "cron": "35 0 * * *"},
        {"name": "billmanager-balances", "func": billmanager.check_balances, "queue_name": "default",
         "cron": "0 6,18 * * *"},
        # «Интерсвязь»: the nightly drift check of every known profile (after the full reconcile)
        {"name": "intercom-check-profiles", "func": intercom.check_profiles, "queue_name": "low",
         "cron": "15 4 * * *"},
        # «Смотрёшка»: 1-3 scheduled re-syncs a day (SMOTRESHKA_RESYNC_TIMES)
        *({"name": f"smotreshka-resync-{n}", "func": smotreshka.scheduled_resync, "queue_name": "low",
           "cron": cron} for n, cron in enumerate(resync_crons(config), start=1)),
        # Stalker: the console's snapshot (STALKER_REFRESH_INTERVAL)
        {"name": "stalker-refresh", "func": stalker.refresh, "queue_name": "low",
         "interval": refresh_interval(config)},
        # notifications: notices into deliveries and deliveries to RQ when the hand-off missed them,
        # due retries; the Telegram bot's updates (the cabinet's /start links)
        {"name": "notifications-sweep", "func": notifications.sweep, "queue_name": "high",
         "interval": int(config["SWEEP_INTERVAL"])},
        {"name": "notifications-telegram-poll", "func": notifications.poll_telegram, "queue_name": "high",
         "interval": int(config["SWEEP_INTERVAL"])},
        # payment agents: call records past their retention (billing.agent_payments.KEEP_DAYS)
        {"name": "prune-provider-calls", "func": payments.prune_provider_calls, "queue_name": "low",
         "cron": "40 4 * * *"},
        # online payments no notification settled: read back (billing.online_payments.due_for_recheck)
        {"name": "online-payments-recheck", "func": payments.recheck_online_payments, "queue_name": "default",
         "interval": 60},
        # issue 19 warnings, after the charge run (the forecast counts on today's charges being
        # posted) and at an hour people read messages: low balance, promised payments due back
        {"name": "forecast-warnings", "func": warnings.warn_low_balance, "queue_name": "default", "cron": "0 10 * * *"},
        {"name": "promised-expiring", "func": warnings.warn_promised_expiring, "queue_name": "default",
         "cron": "5 10 * * *"},
    ]
