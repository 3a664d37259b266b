"""Errors the billing layer raises; every one names the fields that are wrong."""
from __future__ import annotations


class BillingError(Exception):
    """Bad input or a forbidden action: ``fields`` maps field name -> message."""

    def __init__(self, fields: dict[str, str] | str, message: str | None = None):
        if isinstance(fields, str):
            fields = {"_": fields}
        self.fields = fields
        super().__init__(message or "; ".join(f"{k}: {v}" for k, v in fields.items()))


class NotFound(BillingError):
    """The object the caller named does not exist."""
