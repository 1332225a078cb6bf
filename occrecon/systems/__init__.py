"""occrecon.systems."""
