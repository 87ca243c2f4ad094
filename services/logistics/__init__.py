"""logistics: splits placed orders into per-seller shipments, picks carriers, dispatches."""
