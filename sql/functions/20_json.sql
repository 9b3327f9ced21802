-- ngx_chat: the JSON of messages, conversations and members.
--
-- A LANGUAGE sql function whose body reads a table cannot be inlined: each
-- call starts an executor of its own, and one called from such a function
-- is planned again on every call (40 us of Postgres CPU a message, 500 us
-- a conversation, when pages called them once per row).  So each object
-- is one expression, ROW(...)::chat.<object>_out, that the planner inlines
-- into the query asking for it.  What must read other tables is PL/pgSQL,
-- whose plans the session keeps, and is skipped when nothing is there to
-- read: flags on a message (has_files, has_reactions) say whether it has
-- files or reactions.


-- the flags

-- The flags follow the rows they stand for, whoever writes them.  A
-- function that renders a message it changed reads the message again.
-- The triggers are here, with the functions they call: sql/migrate drops
-- them with the functions and this file makes them again.
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


-- the objects

-- The File object.  Its url is the module's: the chat_api location's files
-- route, as the module tells each of its Postgres connections
-- (chat.files_url).
CREATE FUNCTION chat.file_url(p_id bigint, p_thumbnail boolean)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('chat.files_url', true), ''),
                    '/files/')
           || p_id || CASE WHEN p_thumbnail THEN '/thumbnail' ELSE '' END
$$;

-- kind is what the bytes said (image, video, audio are shown inline,
-- file is downloaded); width and height of an image where its header said.
CREATE FUNCTION chat.file_json(f chat.files) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(ROW(f.id, f.name, f.size, f.content_type,
                           chat.file_url(f.id, false),
                           CASE WHEN f.has_thumbnail
                                THEN chat.file_url(f.id, true) END,
                           f.kind, f.width, f.height)::chat.file_out)
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
-- The poll of a message as the Message carries it: options with their
-- counts, and for a viewer the choices they made ("mine"); "voters" names
-- who chose what unless the poll is anonymous.
CREATE FUNCTION chat.poll_json(p_message bigint, p_viewer text)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'options', (SELECT json_agg(json_build_object(
                        'text', o.text,
                        'votes', (SELECT count(*) FROM chat.poll_votes v
                                   WHERE v.message_id = p.message_id
                                     AND v.choice = o.n),
                        'voters', CASE WHEN p.anonymous THEN NULL ELSE
                            (SELECT coalesce(json_agg(v.user_id
                                             ORDER BY v.user_id), '[]')
                               FROM chat.poll_votes v
                              WHERE v.message_id = p.message_id
                                AND v.choice = o.n) END)
                        ORDER BY o.n)
                      FROM unnest(p.options) WITH ORDINALITY AS o(text, n)),
        'multiple', p.multiple, 'anonymous', p.anonymous,
        'closes_at', chat.ts(p.closes_at),
        'closed', p.closed_at IS NOT NULL
                  OR coalesce(p.closes_at <= now(), false),
        'voter_count', (SELECT count(DISTINCT v.user_id)
                          FROM chat.poll_votes v
                         WHERE v.message_id = p.message_id),
        'mine', CASE WHEN p_viewer IS NULL THEN NULL ELSE
                    (SELECT coalesce(json_agg(v.choice ORDER BY v.choice),
                                     '[]')
                       FROM chat.poll_votes v
                      WHERE v.message_id = p.message_id
                        AND v.user_id = p_viewer) END)
      FROM chat.polls p
     WHERE p.message_id = p_message
$$;

CREATE FUNCTION chat.message_json(m chat.messages, p_viewer text)
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
        chat.ts(m.created_at),
        CASE WHEN m.type = 'poll' AND m.deleted_at IS NULL
             THEN chat.poll_json(m.id, p_viewer) END,
        m.bot)::chat.message_out)
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

-- mentions of the user after their read position in one conversation
CREATE FUNCTION chat.unread_mentions(m chat.members)
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
CREATE FUNCTION chat.conversation_json(c chat.conversations, m chat.members)
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
        END,
        c.max_members)::chat.conversation_out)
$$;

CREATE FUNCTION chat.member_json(m chat.members) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(x) FROM (
        SELECT m.user_id, u.name, m.role, chat.ts(m.joined_at) AS joined_at,
               m.last_read_seq
          FROM chat.users u
         WHERE u.tenant_id = m.tenant_id AND u.id = m.user_id
    ) x
$$;
