"""The operator console: server-rendered pages over the operators' commands in `streams.ops`.

`build_console_app` returns one aiohttp application that any listener can mount under
`/console`; it depends on no other route, so it can move to another listener unchanged.
"""

from streams.console.app import build_console_app

__all__ = ["build_console_app"]
