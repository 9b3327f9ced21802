-- Scheduled messages and saved replies (docs/api.md, Scheduled messages
-- and templates).  A scheduled message is the args of a send kept until
-- its time; the workers post it then (chat.api_scheduled_due), as the user
-- would, under the client_id "sch_<id>" so that a retry is no second
-- message.  A template is a user's own text under a name.

CREATE TABLE chat.scheduled_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    user_id         text NOT NULL,
    conversation_id bigint NOT NULL REFERENCES chat.conversations
                    ON DELETE CASCADE,
    send_at         timestamptz NOT NULL,
    args            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX scheduled_messages_due ON chat.scheduled_messages (send_at);
CREATE INDEX scheduled_messages_user
    ON chat.scheduled_messages (tenant_id, user_id, send_at);

CREATE TABLE chat.templates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL,
    user_id     text NOT NULL,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id, name)
);
