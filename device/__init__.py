"""Fiscal core: a pure state machine behind small ports (flash, clock, entropy, keystore)."""
