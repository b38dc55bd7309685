"""The HTTP API: FastAPI routers, security middleware, the WebSocket stream.

`create_app(ctx)` (web.app) builds the application from an `AppContext` (web.context), which
`open_context(settings)` (web.runtime) opens and closes. Nothing imports this package but the
command line.
"""
