"""Small shared utilities (shape checks, atomic file writing, image IO)."""
