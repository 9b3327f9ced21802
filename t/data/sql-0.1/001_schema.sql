-- ngx_chat schema: the source of truth.
--
-- Every conversation has one event stream numbered by "seq" 1, 2, 3 ...
-- without gaps.  The next seq is taken by incrementing conversations.last_seq
-- in the transaction that writes the event: the row lock orders writers of
-- one conversation, and a rolled back transaction gives its number back, so
-- no seq is ever skipped or used twice.  chat.events keeps every event as
-- the JSON that was sent to clients, so that a client that reconnects is
-- replayed exactly the bytes it missed.

CREATE SCHEMA chat;

CREATE TABLE chat.tenants (
    id          text PRIMARY KEY
                CHECK (octet_length(id) BETWEEN 1 AND 128),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- users are made from JWT claims when they first act, or when named
-- as members before they ever connected (then without a name)
CREATE TABLE chat.users (
    tenant_id   text NOT NULL REFERENCES chat.tenants,
    id          text NOT NULL
                CHECK (octet_length(id) BETWEEN 1 AND 128),
    name        text CHECK (char_length(name) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE chat.conversations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES chat.tenants,
    type             text NOT NULL
                     CHECK (type IN ('direct', 'group', 'channel')),
    title            text CHECK (char_length(title) <= 200),
    description      text CHECK (char_length(description) <= 2000),
    avatar_url       text CHECK (char_length(avatar_url) <= 2048),
    owner_id         text,
    -- the two members of a direct conversation, sorted: one per pair
    direct_key       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_seq         bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    -- messages ever posted: unread counts are differences of these
    message_count    bigint NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    last_message_id  bigint,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    member_count     integer NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    archived_at      timestamptz,
    UNIQUE (id, tenant_id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES chat.users,
    CHECK ((type = 'direct') = (direct_key IS NOT NULL)),
    CHECK (type <> 'direct' OR owner_id IS NULL)
);

CREATE UNIQUE INDEX conversations_direct_key
    ON chat.conversations (tenant_id, direct_key)
    WHERE direct_key IS NOT NULL;

CREATE TABLE chat.members (
    conversation_id    bigint NOT NULL,
    tenant_id          text NOT NULL,
    user_id            text NOT NULL,
    role               text NOT NULL
                       CHECK (role IN ('owner', 'admin', 'moderator',
                                       'member')),
    joined_at          timestamptz NOT NULL DEFAULT now(),
    -- the seq of the member_added event (0 for the founders)
    joined_seq         bigint NOT NULL DEFAULT 0 CHECK (joined_seq >= 0),
    pinned             boolean NOT NULL DEFAULT false,
    archived           boolean NOT NULL DEFAULT false,
    muted_until        timestamptz,
    last_read_seq      bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    -- conversations.message_count when last_read_seq was reached
    read_message_count bigint NOT NULL DEFAULT 0
                       CHECK (read_message_count >= 0),
    last_delivered_seq bigint NOT NULL DEFAULT 0
                       CHECK (last_delivered_seq >= 0),
    PRIMARY KEY (conversation_id, user_id),
    FOREIGN KEY (conversation_id, tenant_id)
        REFERENCES chat.conversations (id, tenant_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES chat.users
);

-- "my conversations"
CREATE INDEX members_user ON chat.members (tenant_id, user_id);

CREATE TABLE chat.messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id  bigint NOT NULL,
    tenant_id        text NOT NULL,
    seq              bigint NOT NULL CHECK (seq > 0),
    -- its place among the conversation's messages (1, 2, ...)
    message_no       bigint NOT NULL CHECK (message_no > 0),
    sender_id        text NOT NULL,
    type             text NOT NULL
                     CHECK (type IN ('text', 'emoji', 'file', 'image',
                                     'video', 'audio', 'system', 'call',
                                     'location')),
    content          text,
    reply_to         bigint,
    reply_count      integer NOT NULL DEFAULT 0 CHECK (reply_count >= 0),
    fwd_conversation_id bigint,
    fwd_message_id   bigint,
    fwd_sender_id    text,
    mentions         text[] NOT NULL DEFAULT '{}',
    client_id        text CHECK (octet_length(client_id) BETWEEN 1 AND 512),
    is_pinned        boolean NOT NULL DEFAULT false,
    edited_at        timestamptz,
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    search           tsvector GENERATED ALWAYS AS
                     (to_tsvector('simple', coalesce(content, ''))) STORED,
    UNIQUE (conversation_id, seq),
    UNIQUE (id, conversation_id),
    FOREIGN KEY (conversation_id, tenant_id)
        REFERENCES chat.conversations (id, tenant_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, sender_id) REFERENCES chat.users,
    -- a reply stays in its conversation
    FOREIGN KEY (reply_to, conversation_id)
        REFERENCES chat.messages (id, conversation_id),
    CHECK (deleted_at IS NULL OR content IS NULL),
    CHECK ((fwd_message_id IS NULL) = (fwd_conversation_id IS NULL))
);

-- client_id makes a retried send idempotent
CREATE UNIQUE INDEX messages_client_id
    ON chat.messages (conversation_id, sender_id, client_id)
    WHERE client_id IS NOT NULL;

CREATE INDEX messages_thread ON chat.messages (reply_to, seq)
    WHERE reply_to IS NOT NULL;

CREATE INDEX messages_pinned ON chat.messages (conversation_id, seq)
    WHERE is_pinned;

CREATE INDEX messages_search ON chat.messages USING gin (search);

ALTER TABLE chat.conversations
    ADD FOREIGN KEY (last_message_id) REFERENCES chat.messages
    DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE chat.events (
    conversation_id  bigint NOT NULL
                     REFERENCES chat.conversations ON DELETE CASCADE,
    seq              bigint NOT NULL CHECK (seq > 0),
    type             text NOT NULL,
    message_id       bigint,
    -- the user a member event concerns: subscribers start or stop there
    subject          text,
    -- the event as clients receive it
    payload          text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
);

-- a deleted message's events lose its content too
CREATE INDEX events_message ON chat.events (message_id)
    WHERE message_id IS NOT NULL;

CREATE TABLE chat.reactions (
    message_id  bigint NOT NULL REFERENCES chat.messages ON DELETE CASCADE,
    emoji       text NOT NULL CHECK (char_length(emoji) BETWEEN 1 AND 64),
    tenant_id   text NOT NULL,
    user_id     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, emoji, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES chat.users
);

CREATE TABLE chat.mentions (
    message_id       bigint NOT NULL
                     REFERENCES chat.messages ON DELETE CASCADE,
    conversation_id  bigint NOT NULL,
    seq              bigint NOT NULL,
    tenant_id        text NOT NULL,
    user_id          text NOT NULL,
    PRIMARY KEY (message_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES chat.users
);

-- unread mentions: mine in a conversation after my read position
CREATE INDEX mentions_user
    ON chat.mentions (tenant_id, user_id, conversation_id, seq);

CREATE TABLE chat.files (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL,
    uploader_id   text NOT NULL,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    size          bigint NOT NULL CHECK (size >= 0),
    content_type  text NOT NULL CHECK (char_length(content_type) <= 255),
    storage_key   text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, uploader_id) REFERENCES chat.users
);

CREATE TABLE chat.message_files (
    message_id  bigint NOT NULL REFERENCES chat.messages ON DELETE CASCADE,
    file_id     bigint NOT NULL REFERENCES chat.files,
    position    smallint NOT NULL CHECK (position >= 0),
    PRIMARY KEY (message_id, file_id)
);

CREATE INDEX message_files_file ON chat.message_files (file_id);
