"""Bots: the SDK a bot imports (`sdk/`), the package policy and virtualenv of each bot, the
sandbox it runs in and the supervisor that starts, watches and restarts it."""
