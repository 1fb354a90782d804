"""Tools for the demo stack and development; not used by the service itself."""
