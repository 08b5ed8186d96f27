"""The log's per-append statements, written once per table prefix in the driver's parameter style."""

# Table names come from the validated prefix (`Tables`), never from input: S608 does not apply.
# ruff: noqa: S608

from __future__ import annotations

import functools

from comity.audit._schema import Tables
from comity.core.rawsql import RawTransactions

__all__ = ["AppendStatements"]


class AppendStatements:
    """SQL of the append transaction (``comity.audit.store.LogStore.append_batch``)."""

    def __init__(self, tables: Tables, raw: RawTransactions) -> None:
        p, sql = tables.prefix, raw.sql
        self._sql = sql
        self._nodes_table = f"{p}nodes"
        self.lock = sql("SELECT pg_advisory_xact_lock(?)")
        # The head re-read under the sequencer lock: what keeps two writers from forking the log.
        self.head = f"SELECT COALESCE(MAX(idx) + 1, 0) FROM {p}entries"
        self.insert_entry = sql(f"INSERT INTO {p}entries (idx, leaf_hash, data) VALUES (?, ?, ?)")
        self.insert_node = sql(f"INSERT INTO {p}nodes (level, idx, hash) VALUES (?, ?, ?)")
        self.insert_opening = sql(
            f"INSERT INTO {p}openings (entry_idx, position, commitment, salt, selector_type, value)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        self.close_marker = sql(f"DELETE FROM {p}pending WHERE query_digest = ?")
        self.open_marker = sql(
            f"INSERT INTO {p}pending (query_digest, query_id, node, opened_at, decision_idx)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        self.checkpoint_note = sql(f"SELECT note FROM {p}checkpoints WHERE tree_size = ?")
        # What other writers appended since this process's last batch (catching up, under the lock).
        self.leaf_hashes = sql(
            f"SELECT idx, leaf_hash FROM {p}entries WHERE idx >= ? AND idx < ? ORDER BY idx"
        )
        self.checkpoints_between = sql(
            f"SELECT tree_size, root_hash FROM {p}checkpoints WHERE tree_size > ? AND tree_size <= ?"
            " ORDER BY tree_size"
        )
        self.insert_checkpoint = sql(
            f"INSERT INTO {p}checkpoints (tree_size, root_hash, note) VALUES (?, ?, ?)"
        )
        # One upsert, not delete-then-insert: a witness's newer cosignature replaces its older one.
        self.upsert_cosignature = sql(
            f"INSERT INTO {p}cosignatures (tree_size, witness, line) VALUES (?, ?, ?)"
            " ON CONFLICT (tree_size, witness) DO UPDATE SET line = excluded.line"
        )

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one store per process, a few sizes
    def nodes(self, count: int) -> str:
        """``count`` primary-key lookups of subtree hashes in one statement (params: level, idx, ...).

        An OR of key lookups, not a row-value ``IN``: SQLite scans the whole table for the latter.
        """
        terms = " OR ".join("(level = ? AND idx = ?)" for _ in range(count))
        return self._sql(f"SELECT level, idx, hash FROM {self._nodes_table} WHERE {terms}")
