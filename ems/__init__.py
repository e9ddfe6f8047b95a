"""ems package."""
