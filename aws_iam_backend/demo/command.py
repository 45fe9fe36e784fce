"""The ``demo`` subcommand of ``aws-iam-backend``: parser and dispatch (imports lazily)."""

from __future__ import annotations

import argparse
import os
import sys


def add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo`` (the walkthrough) and ``demo start|stop`` to the command line."""
    demo = commands.add_parser(
        "demo",
        help="watch an IAM login work, against a local AWS emulator (no AWS account needed)",
        description="Without ACTION: start an AWS emulator and a dev server, log in step by "
        "step, show two refused logins, and stop both.",
    )
    actions = demo.add_subparsers(dest="demo_command", metavar="[start|stop]")
    start = actions.add_parser(
        "start",
        help="start an AWS emulator for a running server; prints export lines for eval",
        description='Use as: eval "$(aws-iam-backend demo start --token ROOT)". Starts the '
        "emulator in the background, creates the IAM role ci-runner, points the server's "
        "config/client at the emulator, and exports the role's credentials.",
    )
    start.add_argument(
        "--address",
        default=os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200"),
        help="server URL (default $VAULT_ADDR or http://127.0.0.1:8200)",
    )
    start.add_argument(
        "--token", default=os.environ.get("VAULT_TOKEN"), help="root token (default $VAULT_TOKEN)"
    )
    start.add_argument("--mount", default="aws", help="auth mount path (default aws)")
    actions.add_parser(
        "stop",
        help="stop the emulator started from this shell; prints the unset line for eval",
        description='Use as: eval "$(aws-iam-backend demo stop)".',
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run ``demo`` or ``demo start|stop``; returns the exit code."""
    from aws_iam_backend.demo.emulator import moto_available

    if args.demo_command != "stop" and not moto_available():
        return _fail("the demo needs moto: pip install 'aws_iam_backend[demo]'")
    if args.demo_command is None:
        from aws_iam_backend.demo.walkthrough import run

        return run()
    from aws_iam_backend.demo.shell import ShellError, start, stop

    try:
        if args.demo_command == "stop":
            return stop()
        if not args.token:
            return _fail("demo start: needs --token (or $VAULT_TOKEN): the server's root token")
        return start(args.address, args.token, args.mount)
    except ShellError as exc:
        return _fail(str(exc))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
