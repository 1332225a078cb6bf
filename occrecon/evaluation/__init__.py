"""Evaluation protocols that span several stages (e.g. the fusion ``M_fin`` on the synthetic set)."""
