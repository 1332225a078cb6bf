"""occrecon.config."""
