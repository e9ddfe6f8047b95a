"""Profiles out to the CPO: a database outbox with retries, and the sinks it delivers through."""
