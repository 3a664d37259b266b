"""Staff interface (the admin blueprint)."""
