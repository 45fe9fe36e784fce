"""The pure login pipeline, one module per step, in the order a login flows through them.

``decode`` (the client's payload, with ``headers``) -> ``rebuild`` (validate and rebuild the
signed request for STS, with ``sigv4``, ``endpoints`` and ``partitions``) -> [STS, through
:mod:`aws_iam_backend.io`] -> ``parse`` (STS's answer, ``arn``) -> ``bind`` (the role's bound
principals, ``glob``) -> ``issue`` (alias, metadata and the data kept with the token).
``challenge`` makes and checks server nonces; ``messages`` holds the value objects passed
between the steps. No module here does I/O.
"""
