-- A count of the transactions that deleted rollup rows (retention). The
-- aggregation reads the stored rows it merges into in a read transaction,
-- then writes them back merged; if another process deleted some of them
-- in between, writing them back would undo that. It checks this count,
-- beside the watermark, before it writes (events_rollup.go).
ALTER TABLE event_rollup_state ADD COLUMN rollup_deletes INTEGER NOT NULL DEFAULT 0;
