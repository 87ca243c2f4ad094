"""The throughput benchmark: `bench/run` (see bench/README.md). Not part of the installed package."""
