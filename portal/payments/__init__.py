"""Tools around payments that run outside the web app (the terminal simulator)."""
