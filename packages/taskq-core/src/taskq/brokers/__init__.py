"""taskiq's ``brokers`` paths: each module below holds the names of taskiq's module of its name."""
