"""Subscriber self-service (the cabinet blueprint); built by the admin/cabinet issue."""
