"""Episode recorder, catalog and dataset reader."""
