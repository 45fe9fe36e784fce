"""moto's server on a free loopback port with signature checking on, for the tests.

The start-up code lives in the package (:mod:`aws_iam_backend.demo.emulator`, which the demo
and the examples use too); ``MotoServer`` is its ``Emulator``.
"""

from __future__ import annotations

from aws_iam_backend.demo.emulator import ADMIN_POLICY, ASSUME_POLICY, Keys, free_port
from aws_iam_backend.demo.emulator import Emulator as MotoServer

__all__ = ["ADMIN_POLICY", "ASSUME_POLICY", "Keys", "MotoServer", "free_port"]
