-- chat.events by age: chat.events_prune reads the oldest events first.
--
-- Building it locks out writers of chat.events (every send) while it
-- runs.  On a database with many events, build it beforehand without
-- that lock, outside a transaction:
--
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS events_created_at
--       ON chat.events (created_at);
--
-- and this migration finds it made (an attempt that failed leaves an
-- invalid index of that name: drop it and build it again).

CREATE INDEX IF NOT EXISTS events_created_at ON chat.events (created_at);
