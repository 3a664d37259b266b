"""Helpers shared by test modules (not fixtures: those are in conftest.py and *_fixtures.py)."""
from __future__ import annotations

import re


def login(client, login_name: str, password: str = "password123"):
    """Log a staff member in through the login form (with its CSRF token)."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"login": login_name, "password": password, "csrf_token": token})
