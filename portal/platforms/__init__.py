"""Service platforms: one package per platform, the registry, the hand-off of billing's outbox to
RQ, and the generic reconcile machinery.

Shared pieces (a platform uses them, never copies them):

* ``registry.py``: ``Platform`` (what a platform plugs in, with its optional hooks) and
  ``register``; registering also hands billing what it may ask (``portal.billing.hooks``);
* ``http.HttpClient``: every outbound call, audited with secrets redacted;
* ``emulation.EmulatedServer``: the base of every emulator (down and up on the same port,
  latency, failures on demand);
* ``reconcile.py`` (desired vs actual, retries, sync state) and ``outbox.py`` (the rows billing
  wrote, ``portal.billing.outbox``, handed to RQ and swept);
* ``connections.py``: the stored connection (URL, credentials encrypted, options, timeout).

Every platform package has one shape::

    portal/platforms/<name>/
      __init__.py   registers: register(Platform(name=..., desired_state=sync.desired_state,
                    client=client.<X>Client, reconcile=sync.reconcile, demo_emulator=...,
                    ...)) and says in its docstring what the platform is
      client.py     the wire protocol on HttpClient (compose it: one call = one request());
                    the platform's own error text in PlatformError
      sync.py       desired_state(account) (billing -> platform, the one rule) and
                    reconcile(client, login, desired, sync) (read, apply the difference)
      emulator.py   a local stand-in on EmulatedServer speaking the same protocol, with the
                    real platform's quirks (tests and ``make run`` use it; keep it honest)
      console.py    staff actions, no Flask: checks, imports, lookups; the admin views and the
                    jobs call them (the ``consoles-without-flask`` import contract checks it)
      demo.py       ``make run``: the emulator with demo data (``demo_emulator`` hook) and the
                    billing demo data (``demo_load`` hook)
      settings.py   typed options, read from the connection's stored options or the app's
                    config, never from os.environ (``config.load`` is the only reader of it)

and around it, outside the package: its staff views in ``portal/admin/<name>.py`` (one module;
the admin package imports every module of itself), any HTTP callback it makes to us under
``portal/api/``, its jobs in ``jobs/<name>.py`` (thin: app context, call console.py) and its
periodic jobs in the one list of ``jobs/schedules.py``; its tests in ``tests/test_<name>*.py``.
BILLmanager, the largest, keeps its pages' staff actions in console.py and the work they call
in modules by subject (handlers.py: service handlers and their balances; importer.py: tariffs;
orders.py: orders and renewals; tasks.py).

A new platform, the recipe: copy the smallest one, ``webhook/``, to ``<name>/`` and

1. write its protocol in ``client.py`` (an ``HttpClient`` subclass or a class holding one);
   a protocol with its own failures passes ``fault``/``record`` to ``request`` (see
   billmanager/client.py) instead of copying the transport;
2. write ``emulator.py`` first, from the platform's documentation, quirks included, and test
   the client against it over real HTTP (``tests/test_<name>*.py``, no mocks);
3. write ``desired_state`` and ``reconcile`` in ``sync.py``; add optional hooks in
   ``__init__.py`` as the platform needs them (``check_change`` when a tariff or service change
   must be refused for it, ``reconcile_batch``, ``skip_unchanged``, ``admin_endpoint``, ...: see
   registry.py);
4. typed options in ``settings.py`` (a new app-wide setting goes into ``config.load`` and the
   README's table); staff actions in ``console.py``; the demo in ``demo.py``;
5. models, if it keeps its own data, in ``portal/models/<name>.py`` with a migration; billing
   never imports the platform (``make lint-imports``: layers run models <- billing <-
   platforms <- jobs <- admin/cabinet/api, and no platform imports another).
"""
