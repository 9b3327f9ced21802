-- A user's memberships by when they began: a worker that may have missed
-- "follow" notices asks for those of the last moments
-- (chat.ws_follows_since).  The index replaces members_user, whose
-- columns it begins with: every query that read that one reads this one.
--
-- On a big database build it first without locking out writers, outside a
-- transaction (CREATE INDEX CONCURRENTLY IF NOT EXISTS members_user_joined
-- ON chat.members (tenant_id, user_id, joined_at)), then run sql/migrate.

CREATE INDEX IF NOT EXISTS members_user_joined
    ON chat.members (tenant_id, user_id, joined_at);

DROP INDEX IF EXISTS chat.members_user;
