-- Polls: a message of type "poll" carries a question (its content) and
-- 2-10 options; members vote (one option, or several where it allows),
-- change and retract their votes until it closes.

ALTER TABLE chat.messages DROP CONSTRAINT messages_type_check;
ALTER TABLE chat.messages ADD CONSTRAINT messages_type_check
    CHECK (type IN ('text', 'emoji', 'file', 'image', 'video', 'audio',
                    'system', 'call', 'location', 'poll'));

CREATE TABLE chat.polls (
    message_id       bigint PRIMARY KEY REFERENCES chat.messages
                     ON DELETE CASCADE,
    options          text[] NOT NULL
                     CHECK (cardinality(options) BETWEEN 2 AND 10),
    multiple         boolean NOT NULL DEFAULT false,
    anonymous        boolean NOT NULL DEFAULT false,
    closes_at        timestamptz,
    closed_at        timestamptz
);

CREATE TABLE chat.poll_votes (
    message_id       bigint NOT NULL REFERENCES chat.polls ON DELETE CASCADE,
    user_id          text NOT NULL,
    choice           smallint NOT NULL CHECK (choice >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, choice)
);

-- the Message says how the poll stands
ALTER TYPE chat.message_out ADD ATTRIBUTE poll json;
