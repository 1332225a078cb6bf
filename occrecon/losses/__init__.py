"""occrecon.losses."""
