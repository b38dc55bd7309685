"""Accounts: passwords, second factors, sessions and tokens.

The modules here are stateless primitives (hashing, strength and breach checks, TOTP, backup
codes, mail); the database-backed account service is built on top of them.
"""
