"""Operators' tools: the query and action code behind `topup-guard` subcommands.

Each module does one job and returns plain data (dataclasses, dicts); printing lives in
`streams.ops.commands`, so an operator console can reuse the same queries.
"""
