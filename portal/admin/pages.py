"""Subscriber card, contract and account pages."""
