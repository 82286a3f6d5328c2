"""A tracker's history in as the canonical tables: their schema and folders, importers,
connectors, the team simulator and the export renderer. Imports nothing of Slipcast's but core."""
