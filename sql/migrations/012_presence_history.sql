-- Presence history (docs/api.md, Presence): since when a user is online
-- or chose away, the conversation it looks at (from join), and how long
-- it was online each day (UTC), added up when it goes offline: from the
-- transitions the module already reports, never a write per heartbeat.

ALTER TABLE chat.presence ADD COLUMN online_since timestamptz;
ALTER TABLE chat.presence ADD COLUMN away_since timestamptz;
ALTER TABLE chat.presence ADD COLUMN viewing bigint;

CREATE TABLE chat.presence_days (
    tenant_id   text NOT NULL,
    user_id     text NOT NULL,
    day         date NOT NULL,
    seconds     integer NOT NULL CHECK (seconds BETWEEN 0 AND 86400),
    PRIMARY KEY (tenant_id, user_id, day)
);
