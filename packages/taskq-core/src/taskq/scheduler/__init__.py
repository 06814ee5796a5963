"""taskiq's ``scheduler`` paths: each module below holds the names of taskiq's module."""
