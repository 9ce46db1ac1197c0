"""Helpers for the tests: real servers on free loopback ports, certificates, waiting."""
