"""catalog: sellers (households, cooperatives, aggregators) and their OCOP products."""
