-- A conversation's own cap of members (POST conversations max_members),
-- under chat_max members; NULL: chat_max members alone.

ALTER TABLE chat.conversations ADD COLUMN max_members integer
    CHECK (max_members >= 2);

ALTER TYPE chat.conversation_out ADD ATTRIBUTE max_members integer;
