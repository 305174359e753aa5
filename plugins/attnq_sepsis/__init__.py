"""attnq's built-in medical domain (ICU-Sepsis). The hook implementation is in ``plugin.py``."""
