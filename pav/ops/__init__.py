"""Native ops (`pav._C`, built on first use) and their pure-torch twins."""
