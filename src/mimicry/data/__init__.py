"""Access to the public data bundle through a configurable data root."""
