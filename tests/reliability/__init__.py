"""Reliability: crash consistency, durability, storage and network faults, hostile input."""
