"""Domain basics every other layer may use: errors, permission checks."""
