"""The data node: record stores, ingestion, query execution and minimisation."""
