"""What investigators and legal officers install: Client, AsyncClient, receipts and the `comity` CLI."""
