"""The order gateway: the one way a bot reaches a venue. Each bot gets its own Unix socket;
the gateway authenticates it, checks every message, sends orders through the risk engine and
the audit log, and routes fills and candles back."""
