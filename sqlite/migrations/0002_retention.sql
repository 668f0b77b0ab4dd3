-- Per-app retention of raw events and rollups, in milliseconds (0: default).
ALTER TABLE apps ADD COLUMN event_retention_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN rollup_retention_ms INTEGER NOT NULL DEFAULT 0;
