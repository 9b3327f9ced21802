-- The outbox: what must reach a user who is not connected (a mention, a
-- direct message, a reply to one's message), written by the transaction
-- of the message itself, so that nothing notified was not committed and
-- nothing committed is forgotten.  Workers claim due rows with a lease
-- (sql/functions/85_outbox.sql) and send them to the webhook; rows that
-- could not be delivered within chat_webhook max_age= go to outbox_dead.

CREATE TABLE chat.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    user_id         text NOT NULL,
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    seq             bigint NOT NULL,
    reason          text NOT NULL
                    CHECK (reason IN ('direct', 'mention', 'reply')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    due_at          timestamptz NOT NULL,
    -- the delivery a row belongs to once claimed: retried as it was, so
    -- that the receiver sees one webhook-id for it however often it comes
    batch           bigint,
    leased_until    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);

CREATE INDEX outbox_due ON chat.outbox (due_at);
CREATE INDEX outbox_batch ON chat.outbox (batch) WHERE batch IS NOT NULL;
CREATE INDEX outbox_user ON chat.outbox (tenant_id, user_id);

CREATE TABLE chat.outbox_dead (
    LIKE chat.outbox,
    died_at         timestamptz NOT NULL DEFAULT now()
);
