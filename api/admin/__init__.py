"""Admin API: the sites an administrator draws (later: users, partners, dashboards)."""
