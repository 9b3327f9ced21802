-- ngx_chat: the JSON of messages, conversations and presence without an
-- executor per row.
--
-- A LANGUAGE sql function whose body reads a table cannot be inlined: each
-- call starts an executor of its own, and one called from such a function
-- is planned again on every call.  Pages called them once per row: 40 us
-- of Postgres CPU a message, 500 us a conversation (bench/, reads).  Here
-- each object is one expression, ROW(...)::type, that the planner inlines
-- into the query asking for it.  What must read other tables is PL/pgSQL,
-- whose plans the session keeps, and is skipped when nothing is there to
-- read: flags on a message say whether it has files or reactions.

ALTER TABLE chat.messages
    ADD COLUMN has_files boolean NOT NULL DEFAULT false,
    ADD COLUMN has_reactions boolean NOT NULL DEFAULT false;

UPDATE chat.messages m SET has_files = true
 WHERE EXISTS (SELECT 1 FROM chat.message_files f WHERE f.message_id = m.id);

UPDATE chat.messages m SET has_reactions = true
 WHERE EXISTS (SELECT 1 FROM chat.reactions r WHERE r.message_id = m.id);

-- The flags follow the rows they stand for, whoever writes them.  A
-- function that renders a message it changed reads the message again.
CREATE FUNCTION chat.flag_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE chat.messages SET has_files = true
         WHERE id IN (SELECT message_id FROM changed) AND NOT has_files;
    ELSE
        UPDATE chat.messages m SET has_files = false
         WHERE id IN (SELECT message_id FROM changed) AND has_files
           AND NOT EXISTS (SELECT 1 FROM chat.message_files f
                            WHERE f.message_id = m.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION chat.flag_reactions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE chat.messages SET has_reactions = true
         WHERE id IN (SELECT message_id FROM changed) AND NOT has_reactions;
    ELSE
        UPDATE chat.messages m SET has_reactions = false
         WHERE id IN (SELECT message_id FROM changed) AND has_reactions
           AND NOT EXISTS (SELECT 1 FROM chat.reactions r
                            WHERE r.message_id = m.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER files_added AFTER INSERT ON chat.message_files
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION chat.flag_files();

CREATE TRIGGER files_removed AFTER DELETE ON chat.message_files
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION chat.flag_files();

CREATE TRIGGER reactions_added AFTER INSERT ON chat.reactions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION chat.flag_reactions();

CREATE TRIGGER reactions_removed AFTER DELETE ON chat.reactions
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION chat.flag_reactions();


-- the objects, field by field as the API names them

CREATE TYPE chat.file_out AS (
    id bigint, name text, size bigint, content_type text, url text,
    thumbnail_url text);

CREATE TYPE chat.forward_out AS (
    conversation_id bigint, message_id bigint, sender_id text);

CREATE TYPE chat.message_out AS (
    id bigint, conversation_id bigint, seq bigint, sender_id text,
    type text, content text, attachments json, reply_to bigint,
    reply_count integer, forwarded_from json, mentions text[],
    reactions json, is_edited boolean, edited_at text, is_deleted boolean,
    is_pinned boolean, client_id text, created_at text);

CREATE TYPE chat.member_state AS (
    role text, pinned boolean, archived boolean, muted_until text,
    last_read_seq bigint, unread_count bigint, unread_mentions bigint);

CREATE TYPE chat.conversation_out AS (
    id bigint, type text, title text, description text, avatar_url text,
    owner_id text, created_at text, updated_at text, last_seq bigint,
    last_message json, member_count integer, is_archived boolean,
    me json);

CREATE OR REPLACE FUNCTION chat.file_json(f chat.files) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(ROW(f.id, f.name, f.size, f.content_type,
                           '/files/' || f.id, NULL)::chat.file_out)
$$;

CREATE FUNCTION chat.attachments_json(p_message bigint) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items text;
BEGIN
    SELECT string_agg(chat.file_json(f)::text, ',' ORDER BY mf.position)
      INTO v_items
      FROM chat.message_files mf
      JOIN chat.files f ON f.id = mf.file_id
     WHERE mf.message_id = p_message;

    RETURN ('[' || coalesce(v_items, '') || ']')::json;
END
$$;

-- by emoji, in the order they were first given; "me" is null without a
-- viewer
CREATE FUNCTION chat.reactions_json(p_message bigint, p_viewer text)
RETURNS json LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items text;
BEGIN
    SELECT string_agg(row_to_json((r.emoji, r.count, r.me)::chat.reaction)
                          ::text, ',' ORDER BY r.first_at, r.emoji)
      INTO v_items
      FROM (SELECT emoji, count(*) AS count,
                   CASE WHEN p_viewer IS NOT NULL THEN
                       bool_or(user_id = p_viewer)
                   END AS me,
                   min(created_at) AS first_at
              FROM chat.reactions
             WHERE message_id = p_message
             GROUP BY emoji) r;

    RETURN ('[' || coalesce(v_items, '') || ']')::json;
END
$$;

-- A message as p_viewer sees it; with p_viewer NULL (an event, sent to
-- everyone alike) "me" of each reaction is null.  A deleted message keeps
-- no attachments.
CREATE OR REPLACE FUNCTION chat.message_json(m chat.messages,
                                             p_viewer text)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT row_to_json(ROW(
        m.id, m.conversation_id, m.seq, m.sender_id, m.type, m.content,
        CASE WHEN m.has_files AND m.deleted_at IS NULL
             THEN chat.attachments_json(m.id) ELSE '[]' END,
        m.reply_to, m.reply_count,
        CASE WHEN m.fwd_message_id IS NOT NULL THEN
            row_to_json(ROW(m.fwd_conversation_id, m.fwd_message_id,
                            m.fwd_sender_id)::chat.forward_out)
        END,
        m.mentions,
        CASE WHEN m.has_reactions
             THEN chat.reactions_json(m.id, p_viewer) ELSE '[]' END,
        m.edited_at IS NOT NULL, chat.ts(m.edited_at),
        m.deleted_at IS NOT NULL, m.is_pinned, m.client_id,
        chat.ts(m.created_at))::chat.message_out)
$$;

CREATE FUNCTION chat.last_message_json(p_message bigint, p_viewer text)
RETURNS json LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_json json;
BEGIN
    SELECT chat.message_json(m, p_viewer) INTO v_json
      FROM chat.messages m
     WHERE m.id = p_message;

    RETURN v_json;
END
$$;

CREATE OR REPLACE FUNCTION chat.unread_mentions(m chat.members)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_count bigint;
BEGIN
    SELECT count(*) INTO v_count
      FROM chat.mentions x
     WHERE x.tenant_id = m.tenant_id AND x.user_id = m.user_id
       AND x.conversation_id = m.conversation_id
       AND x.seq > m.last_read_seq;

    RETURN v_count;
END
$$;

-- A conversation as its member sees it.  In events, which every member
-- receives alike, "me" and "last_message" are null: a stored event must
-- not keep a message that may be deleted later.  Mentions are counted
-- only when something is unread.
CREATE OR REPLACE FUNCTION chat.conversation_json(c chat.conversations,
                                                  m chat.members)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT row_to_json(ROW(
        c.id, c.type, c.title, c.description, c.avatar_url, c.owner_id,
        chat.ts(c.created_at), chat.ts(c.updated_at), c.last_seq,
        CASE WHEN m.user_id IS NOT NULL AND c.last_message_id IS NOT NULL
             THEN chat.last_message_json(c.last_message_id, m.user_id)
        END,
        c.member_count, c.archived_at IS NOT NULL,
        CASE WHEN m.user_id IS NOT NULL THEN
            row_to_json(ROW(
                m.role, m.pinned, m.archived, chat.ts(m.muted_until),
                m.last_read_seq, c.message_count - m.read_message_count,
                CASE WHEN c.last_seq > m.last_read_seq
                     THEN chat.unread_mentions(m) ELSE 0 END
            )::chat.member_state)
        END)::chat.conversation_out)
$$;


-- presence

CREATE TYPE chat.presence_out AS (
    user_id text, status text, custom_status text, status_emoji text,
    last_seen text);

-- What others see: offline and nothing more without a connection, offline
-- too for an invisible user; the user sees what it chose.
CREATE OR REPLACE FUNCTION chat.presence_json(p_tenant text, p_user text,
                                              p_online boolean,
                                              p_self boolean)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    p       chat.presence;
    v_shown boolean;
BEGIN
    SELECT * INTO p FROM chat.presence
     WHERE tenant_id = p_tenant AND user_id = p_user;

    v_shown := p_self OR (p_online AND coalesce(p.status, 'online')
                                       NOT IN ('invisible', 'offline'));

    RETURN row_to_json(ROW(
        p_user,
        CASE WHEN v_shown THEN coalesce(p.status, 'online')
             ELSE 'offline' END,
        CASE WHEN v_shown THEN p.custom_status END,
        CASE WHEN v_shown THEN p.status_emoji END,
        chat.ts(p.last_seen))::chat.presence_out)::text;
END
$$;

-- the event is made once for all who receive it
CREATE OR REPLACE FUNCTION chat.presence_events(p_tenant text, p_user text,
                                                p_online boolean)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_event text := '{"type":"presence",'
                    || substr(chat.presence_json(p_tenant, p_user,
                                                 p_online, false), 2);
BEGIN
    RETURN QUERY
    SELECT (chat.notify(p_tenant, x.user_id, 'event', v_event)).*
      FROM (SELECT DISTINCT o.user_id
              FROM chat.members m
              JOIN chat.members o ON o.conversation_id = m.conversation_id
             WHERE m.tenant_id = p_tenant AND m.user_id = p_user
               AND o.user_id <> p_user
             LIMIT 5000) x;
END
$$;


-- the writers that render a message they just changed: a new message
-- carries its flag of files from the start; a reaction's answer reads the
-- message again

CREATE OR REPLACE FUNCTION chat.post(c chat.conversations, p_sender text,
                                     p_type text, p_content text,
                                     p_reply_to bigint, p_mentions text[],
                                     p_files bigint[], p_client_id text,
                                     p_fwd chat.messages,
                                     OUT msg chat.messages,
                                     OUT events chat.reply[])
LANGUAGE plpgsql AS $$
DECLARE
    v_seq  bigint;
    v_no   bigint;
    v_user text;
    v_json json;
BEGIN
    UPDATE chat.conversations
       SET last_seq = last_seq + 1, message_count = message_count + 1,
           last_activity_at = now()
     WHERE id = c.id
    RETURNING last_seq, message_count INTO v_seq, v_no;

    INSERT INTO chat.messages (conversation_id, tenant_id, seq, message_no,
                               sender_id, type, content, reply_to, mentions,
                               client_id, fwd_conversation_id,
                               fwd_message_id, fwd_sender_id, has_files)
    VALUES (c.id, c.tenant_id, v_seq, v_no, p_sender, p_type, p_content,
            p_reply_to, p_mentions, p_client_id, p_fwd.conversation_id,
            p_fwd.id, p_fwd.sender_id, cardinality(p_files) > 0)
    RETURNING * INTO msg;

    INSERT INTO chat.message_files (message_id, file_id, position)
    SELECT msg.id, f, n - 1
      FROM unnest(p_files) WITH ORDINALITY AS x(f, n);

    UPDATE chat.conversations SET last_message_id = msg.id WHERE id = c.id;

    IF p_reply_to IS NOT NULL THEN
        UPDATE chat.messages SET reply_count = reply_count + 1
         WHERE id = p_reply_to;
    END IF;

    INSERT INTO chat.mentions (message_id, conversation_id, seq, tenant_id,
                               user_id)
    SELECT msg.id, c.id, v_seq, c.tenant_id, u
      FROM unnest(p_mentions) u
     WHERE u <> p_sender;

    -- sending reads the conversation for the sender up to the message
    UPDATE chat.members
       SET last_read_seq = v_seq, read_message_count = v_no,
           last_delivered_seq = greatest(last_delivered_seq, v_seq)
     WHERE conversation_id = c.id AND user_id = p_sender;

    v_json := chat.message_json(msg, NULL);
    events := ARRAY[chat.emit(c.id, v_seq, 'new_message',
                              chat.kv('message', v_json), msg.id)];

    FOREACH v_user IN ARRAY p_mentions LOOP
        CONTINUE WHEN v_user = p_sender;
        events := events || chat.notify(c.tenant_id, v_user, 'event',
            '{"type":"mention","conversation_id":' || c.id
            || ',"message":' || v_json || '}');
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION chat.set_reaction(p_tenant text, p_user text,
                                             a jsonb, p_on boolean)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e       record;
    m       chat.messages;
    v_emoji text := a->>'emoji';
    v_seq   bigint;
    v_rows  integer;
BEGIN
    -- it must also name itself in a path: DELETE .../reactions/<emoji>
    IF v_emoji IS NULL OR char_length(v_emoji) NOT BETWEEN 1 AND 64
       OR v_emoji ~ '[[:space:][:cntrl:]/\\?#%]' OR v_emoji ~ '^\.+$'
    THEN
        PERFORM chat.fail(400, '"emoji": must be 1 to 64 characters, '
                               'without spaces, "/", "\\", "?", "#", "%" '
                               'or only dots');
    END IF;

    e := chat.enter(p_tenant, p_user,
                    chat.conversation_of(p_tenant, p_user, a), true);
    m := chat.message_in((e.c).id, (a->>'message_id')::bigint);

    PERFORM chat.require_not_deleted(m);
    PERFORM chat.require_open(e.c);

    IF p_on THEN
        INSERT INTO chat.reactions (message_id, emoji, tenant_id, user_id)
        VALUES (m.id, v_emoji, p_tenant, p_user)
        ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM chat.reactions
         WHERE message_id = m.id AND emoji = v_emoji AND user_id = p_user;
    END IF;

    GET DIAGNOSTICS v_rows = ROW_COUNT;

    m := chat.message_in((e.c).id, m.id);

    RETURN NEXT chat.answer(200, chat.message_json(m, p_user)::text);

    IF v_rows = 0 THEN
        RETURN;
    END IF;

    v_seq := chat.next_seq((e.c).id);

    RETURN NEXT chat.emit((e.c).id, v_seq,
                          CASE WHEN p_on THEN 'reaction_added'
                               ELSE 'reaction_removed' END,
                          chat.kv('message_id', to_json(m.id)) || ','
                          || chat.kv('user_id', to_json(p_user)) || ','
                          || chat.kv('emoji', to_json(v_emoji)), m.id);
END
$$;
