"""The agent's small HTTP servers (readiness on 15021, merged metrics on 15020) start
the same way: one aiohttp app on host:port, nothing left behind if the port is taken."""

from __future__ import annotations

from aiohttp import web


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port; OSError (port taken, ...) after cleaning up."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
