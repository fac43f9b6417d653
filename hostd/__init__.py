"""Host side: device client, CLI, and later the daemon serving POS software."""
