"""Extensions, created unbound and bound in create_app()."""
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
api = Api()


def expire_loaded(model, attrs: list[str], which=lambda obj: True) -> None:
    """Expire ``attrs`` of the ``model`` objects this session has loaded (those ``which``
    picks), after a set-based UPDATE changed them behind the ORM's back."""
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, model) and which(obj):
            db.session.expire(obj, attrs)
