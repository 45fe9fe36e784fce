"""The drivers: the stateful parts that run the pure pipeline against the I/O protocols.

``_async`` is the source: :class:`~aws_iam_backend.AsyncBackend` and the services it
uses (token store, replay claims in storage, login guards, stored keys). ``_sync`` is
generated from it by ``scripts/unasync.py`` (:class:`~aws_iam_backend.Backend`, ...), so
both drivers run one implementation. The modules beside them are shared by both and do
no I/O of their own: ``shapes`` (settings, requests, responses, routes), ``audit``,
``ratelimit``, ``replay`` (in-process claims) and ``defaults``.
"""
