"""The CHEF loop, ablations and reports."""
