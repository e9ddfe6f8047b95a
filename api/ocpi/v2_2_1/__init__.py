"""OCPI 2.2.1 routes, one module per OCPI module."""
