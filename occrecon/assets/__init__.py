"""occrecon.assets."""
