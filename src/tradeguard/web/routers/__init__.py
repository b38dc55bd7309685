"""API routers, one module an area, each exposing `router` (included by web.app)."""
