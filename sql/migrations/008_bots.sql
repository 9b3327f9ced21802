-- Bots (docs/api.md, Bots): a user whose token says "bot": true.  The
-- flag follows the token the user last acted with; a message keeps
-- whether a bot sent it.  A conversation of type "bot" is one user and one
-- bot (an assistant's room); every message in a conversation with a bot
-- goes to the webhook for it (outbox reason "bot").

ALTER TABLE chat.users ADD COLUMN bot boolean NOT NULL DEFAULT false;
-- a tenant's bots, few: what a new message looks up (chat.outbox_add)
CREATE INDEX users_bots ON chat.users (tenant_id) WHERE bot;
ALTER TABLE chat.messages ADD COLUMN bot boolean NOT NULL DEFAULT false;

ALTER TABLE chat.conversations DROP CONSTRAINT conversations_type_check;
ALTER TABLE chat.conversations ADD CONSTRAINT conversations_type_check
    CHECK (type IN ('direct', 'group', 'channel', 'bot'));

ALTER TABLE chat.outbox DROP CONSTRAINT outbox_reason_check;
ALTER TABLE chat.outbox ADD CONSTRAINT outbox_reason_check
    CHECK (reason IN ('direct', 'mention', 'reply', 'bot'));

ALTER TYPE chat.message_out ADD ATTRIBUTE bot boolean;
