"""orders: takes shops' signed order webhooks, checks them against the catalog, keeps orders."""
