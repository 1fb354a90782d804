"""Redis adapters: lockout counters and authentication codes, each updated by one Lua script."""
