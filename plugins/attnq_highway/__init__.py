"""attnq's built-in driving domain (highway-env). The hook implementation is in ``plugin.py``."""
