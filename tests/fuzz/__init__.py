"""Fuzz tests: malformed input must end in a clean convscope error or a valid result."""
