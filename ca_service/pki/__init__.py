"""X.509 and DER building blocks. No I/O and no clock reads: callers pass time in."""
