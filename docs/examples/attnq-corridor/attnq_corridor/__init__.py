"""Example attnq domain plugin (see docs/plugins.md)."""
