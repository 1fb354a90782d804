"""What every listening socket of the project shares, whatever speaks HTTP on it: admission of
connections (a cap per process, eviction, the request-head deadline), the gateway's accept
loop, and the process's descriptor limit and release of freed memory."""
