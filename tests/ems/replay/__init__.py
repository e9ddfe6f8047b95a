"""Tests of the replay engine, its KPIs and `ems replay`."""
