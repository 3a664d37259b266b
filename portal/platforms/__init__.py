"""Service platforms: one package per platform (client, sync, emulator), the registry, the
outbox of changes and the generic reconcile machinery."""
