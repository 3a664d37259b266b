"""What gunicorn and `flask` load: `gunicorn wsgi:app`."""
from portal import create_app

app = create_app()
