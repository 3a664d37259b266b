"""The portal application factory."""
from __future__ import annotations

from flask import Flask, request, session
from werkzeug.routing import IntegerConverter

from . import config as config_module
from . import proxies
from .extensions import babel, csrf, db, login_manager, migrate


def create_app(config: dict | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error pages, CLI, logging."""
    app = Flask(
        __name__,
        instance_path=str(config_module.INSTANCE),
        template_folder=str(config_module.ROOT / "templates"),
        static_folder=str(config_module.ROOT / "static"),
    )
    app.config.update(config_module.load(config))
    app.json.ensure_ascii = False  # Russian stays readable in JSON answers
    app.wsgi_app = proxies.trust(app.wsgi_app, app.config["TRUSTED_PROXIES"])
    app.url_map.converters["int"] = BoundedInt  # before any blueprint's rules are built
    register_size_limit(app)  # first: its hook runs before any other reads a body (CSRF reads forms)
    register_extensions(app)
    register_security(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_jinja(app)
    register_commands(app)
    configure_logger(app)
    return app


def select_locale() -> str:
    """Russian by default; ?lang= or the session's choice switches to English."""
    lang = request.args.get("lang")
    if lang in ("ru", "en"):
        session["lang"] = lang
    return session.get("lang", "ru")


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions; tune SQLite for a web and a worker writing at once."""
    from . import models  # noqa: F401  (register every table)
    from .db_setup import configure_engine

    # imported here: the name `api` at package level is the portal.api subpackage
    from .extensions import api

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config_module.ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    # dates and times on pages are the operator's (BILLING_TZ), whatever the browser's zone
    babel.init_app(app, locale_selector=select_locale, timezone_selector=lambda: app.config["BILLING_TZ"])
    api.init_app(app)
    from flask_babel import get_locale

    app.jinja_env.globals["get_locale"] = get_locale
    with app.app_context():
        configure_engine(db.engine)
    from .platforms.outbox import install
    from .platforms.registry import load_builtin

    load_builtin()  # every platform registers what billing may ask of it (billing.hooks) first
    install(app)
    from .notifications.handoff import install as install_notifications

    install_notifications(app)  # notices and deliveries handed to RQ after commit


class BoundedInt(IntegerConverter):
    """``<int:...>`` in every URL: 1 .. 2**63-1 (the largest BIGINT), so a larger id is a 404
    instead of an overflow in the database driver (a 500)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def register_security(app: Flask) -> None:
    """Session idle and absolute lifetimes; CSP and the other security headers (security.py)."""
    from . import security
    from .api.errors import refuse_bodyless_patch

    security.register(app)
    app.before_request(refuse_bodyless_patch)


def register_blueprints(app: Flask) -> None:
    """Admin (staff), cabinet (subscribers), API v1 (operators' systems) and platform callbacks."""
    from .admin import bp as admin_bp
    from .admin.jobs import mount_rq_dashboard
    from .api import register_api
    from .cabinet import bp as cabinet_bp
    app.register_blueprint(admin_bp)
    app.register_blueprint(cabinet_bp)
    register_api(app)
    from .api.provider import bp as provider_bp  # payment agents' provider protocol

    app.register_blueprint(provider_bp)
    from .api.online_payments import bp as yookassa_bp  # ЮKassa's notifications (online payments)

    app.register_blueprint(yookassa_bp)
    from .api.common import document_write_rules
    from .extensions import api

    document_write_rules(api.spec)
    mount_rq_dashboard(app)


def register_errorhandlers(app: Flask) -> None:
    """HTML pages for 403, 404 and 500, each with a way back; under /api/ the API's JSON error
    shape instead."""
    from flask import render_template

    from .api import PREFIX
    from .api.errors import error_response

    def page(error):
        if request.path.startswith(PREFIX + "/"):
            return error_response(error)
        return render_template(f"errors/{error.code}.html"), error.code

    for code in (403, 404, 500):
        app.register_error_handler(code, page)


# the 413 page for people: plain text, Russian first (it needs no session, template or catalog)
TOO_LARGE_PAGE = "413 · Запрос слишком велик / Request too large\n"


def register_size_limit(app: Flask) -> None:
    """MAX_CONTENT_LENGTH for every request: a larger body is answered 413, JSON for the API
    and platform callbacks, a plain page elsewhere. A body of declared size is refused before it
    is read; a chunked one is read here, up to the limit (werkzeug's stream raises 413 past it),
    so the 413 comes before any view or the CSRF check has read part of it."""
    from flask import abort

    from .api import PREFIX, upsale
    from .api.errors import error_response

    @app.before_request
    def _refuse_oversized():
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if request.endpoint == "admin.upload_statement":  # a bank statement: its own bound (+ the form's)
            from .billing.statements import MAX_BYTES as statement_bytes

            limit = request.max_content_length = statement_bytes + 64 * 1024
        if not limit:
            return
        if request.content_length is not None:
            if request.content_length > limit:
                abort(413)
        elif "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            if len(request.get_data(cache=True)) >= limit:  # (kept for the view: read once)
                abort(413)

    def too_large(error):
        if request.path.startswith(PREFIX + "/"):
            return error_response(error)
        if request.path.startswith(upsale.PREFIX + "/"):
            return upsale.too_large(error)
        return TOO_LARGE_PAGE, 413, {"Content-Type": "text/plain; charset=utf-8"}

    app.register_error_handler(413, too_large)


def register_jinja(app: Flask) -> None:
    """Filters the pages share: money and moments in the user's language and the operator's
    currency and zone (portal/web.py), form helpers, what the platforms add to pages."""
    from .web import audit_summary, currency_symbol, local_date, local_time, money, platform_note

    def options(objects, label="name"):
        """(id, label) pairs for a <select> from model objects."""
        return [(o.id, getattr(o, label)) for o in objects]

    def scoped(errors, prefix):
        """The errors of one of several forms on a page (keys "<prefix>.<field>")."""
        return {k[len(prefix) + 1:]: v for k, v in errors.items() if k.startswith(prefix + ".")}

    def admin_platform_pages():
        """(endpoint, title) of each platform's admin page, for the sidebar."""
        from .platforms.registry import all_platforms

        return [(p.admin_endpoint, p.title) for p in all_platforms() if p.admin_endpoint]

    def platform_check_endpoint(kind):
        """The endpoint that starts a platform's connection check, if it has one."""
        from .platforms.registry import all_platforms

        return next((p.check_endpoint for p in all_platforms() if p.name == kind), None)

    def cabinet_sections():
        """Templates the platforms add to the cabinet's home page."""
        from .platforms.registry import all_platforms

        return [p.cabinet_template for p in all_platforms() if p.cabinet_template]

    def account_panels():
        """Panels the platforms add to the staff account page."""
        from .platforms.registry import all_platforms

        return [p.account_template for p in all_platforms() if p.account_template]

    from .web import action_title, actor_title, entry_title, redacted, source_title, state_diff, state_title

    app.jinja_env.globals.update(currency_symbol=currency_symbol, audit_summary=audit_summary,
                                 platform_note=platform_note)
    app.jinja_env.globals.update(admin_platform_pages=admin_platform_pages, cabinet_sections=cabinet_sections,
                                 account_panels=account_panels, entry_title=entry_title,
                                 action_title=action_title, actor_title=actor_title, state_diff=state_diff,
                                 redacted=redacted, source_title=source_title,
                                 state_title=state_title, platform_check_endpoint=platform_check_endpoint)
    app.jinja_env.filters.update(money=money, local_time=local_time, local_date=local_date, options=options,
                                 scoped=scoped)


def register_commands(app: Flask) -> None:
    """`flask staff|billing|platforms|api-token|demo ...`."""
    from .cli import register

    register(app)


def configure_logger(app: Flask) -> None:
    """One line per record, with the logger name, to stderr (portal/logs.py: UTC, one format)."""
    from .logs import setup

    setup()
