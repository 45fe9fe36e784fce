"""See it work without AWS: ``aws-iam-backend demo`` and the AWS emulator behind it.

- :mod:`~aws_iam_backend.demo.emulator`: moto's server on loopback with signature checking
  on (used by the demo, the examples and the test suite);
- :mod:`~aws_iam_backend.demo.walkthrough`: ``aws-iam-backend demo``, one login step by step;
- :mod:`~aws_iam_backend.demo.shell`: ``aws-iam-backend demo start|stop``, the emulator for a
  running server and the shell's AWS credentials (the README's sections use it);
- :mod:`~aws_iam_backend.demo.command`: the command line.

Needs the ``demo`` extra (moto). Nothing here is used by the library or the server.
"""
