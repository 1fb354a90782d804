"""Pure rules of the CA: no I/O, no clock reads (time is always passed in)."""
