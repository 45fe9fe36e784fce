"""The drivers: the stateful parts that run the pure pipeline against the I/O protocols.

``_sync`` holds :class:`Backend` and the services it uses (token store, replay claims,
login guards, rate limits, audit).
"""
