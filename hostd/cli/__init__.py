"""The ``fiscal`` command: click groups, one module per group, and the demo. The only layer that
prints and decides exit codes (README "Exit codes"); every other room raises ``HostdError``s.
It may import every room; nothing imports it. The entry point is ``hostd.cli.main:main``.
"""
