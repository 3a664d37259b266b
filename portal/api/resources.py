"""The list of API v1 blueprints (one module per resource)."""


def blueprints():
    return []
