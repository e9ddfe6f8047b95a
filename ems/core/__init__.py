"""What every stage shares: settings, the clock port, domain events, and the running context."""
