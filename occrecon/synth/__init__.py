"""occrecon.synth."""
