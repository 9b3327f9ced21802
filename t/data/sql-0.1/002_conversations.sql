-- ngx_chat: helpers, conversations and members.
--
-- Each action of the API is one function chat.api_<action>(tenant, user,
-- name, args) that the module calls with arguments it has already checked
-- for type and size.  It returns rows of chat.reply: the first is the
-- answer (status, body), the others are events to publish (channel, body).
-- A refusal is raised with SQLSTATE 'CH' || status, which rolls back
-- whatever the function wrote before it.

CREATE TYPE chat.reply AS (status integer, channel text, body text);

-- RFC 3339 in UTC with milliseconds
CREATE FUNCTION chat.ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION chat.fail(p_status integer, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CH' || p_status, MESSAGE = p_message;
END
$$;

CREATE FUNCTION chat.rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_role WHEN 'owner' THEN 4 WHEN 'admin' THEN 3
                       WHEN 'moderator' THEN 2 WHEN 'member' THEN 1
                       ELSE 0 END
$$;

CREATE FUNCTION chat.answer(p_status integer, p_body text)
RETURNS chat.reply LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_status, NULL, p_body)::chat.reply
$$;

-- the tenant and the user behind a token exist once they act
CREATE FUNCTION chat.touch_user(p_tenant text, p_user text, p_name text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- the common case writes nothing: known, and known by this name
    PERFORM 1 FROM chat.users
     WHERE tenant_id = p_tenant AND id = p_user
       AND (p_name IS NULL OR name IS NOT DISTINCT FROM p_name);

    IF NOT FOUND THEN
        PERFORM chat.touch_users(p_tenant, p_user, p_name, '{}');
    END IF;
END
$$;

-- The caller and the users it names (who may never have connected yet)
-- exist.  All are inserted in one statement, in one order: two callers
-- naming each other wait for each other, they do not deadlock.
CREATE FUNCTION chat.touch_users(p_tenant text, p_user text, p_name text,
                                 p_users text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat.tenants (id) VALUES (p_tenant) ON CONFLICT DO NOTHING;

    INSERT INTO chat.users (tenant_id, id)
    SELECT p_tenant, u
      FROM (SELECT DISTINCT u FROM unnest(p_users || p_user) u) x
     ORDER BY u COLLATE "C"
    ON CONFLICT DO NOTHING;

    IF p_name IS NOT NULL THEN
        UPDATE chat.users SET name = p_name
         WHERE tenant_id = p_tenant AND id = p_user
           AND name IS DISTINCT FROM p_name;
    END IF;
END
$$;


-- events

CREATE FUNCTION chat.next_seq(p_conversation bigint) RETURNS bigint
LANGUAGE sql AS $$
    UPDATE chat.conversations SET last_seq = last_seq + 1
     WHERE id = p_conversation
    RETURNING last_seq
$$;

-- Redis channels, below the prefix the module adds: a conversation's
-- stream, and each user's own (for what concerns them in a conversation
-- they do not yet follow)
CREATE FUNCTION chat.conversation_channel(p_conversation bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'c:' || p_conversation
$$;

CREATE FUNCTION chat.user_channel(p_tenant text, p_user text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'u:' || octet_length(p_tenant) || ':' || p_tenant || ':' || p_user
$$;

-- What goes on the wire for an event: a header line, "<seq>" and for a
-- member change " +<user>" or " -<user>", then the event itself.  Workers
-- route by the header and never parse the event; live and replayed events
-- are the same bytes.
CREATE FUNCTION chat.wire(p_seq bigint, p_type text, p_subject text,
                          p_payload text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT p_seq
           || CASE p_type WHEN 'member_added' THEN ' +' || p_subject
                          WHEN 'member_removed' THEN ' -' || p_subject
                          ELSE '' END
           || E'\n' || p_payload
$$;

-- Stores an event of a conversation and returns its publication.  p_data
-- is the rest of the event object, as JSON members ("a":1,"b":2).
CREATE FUNCTION chat.emit(p_conversation bigint, p_seq bigint, p_type text,
                          p_data text, p_message_id bigint DEFAULT NULL,
                          p_subject text DEFAULT NULL)
RETURNS chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_event text;
BEGIN
    v_event := '{"type":' || to_json(p_type)
            || ',"conversation_id":' || p_conversation
            || ',"seq":' || p_seq
            || CASE WHEN p_data IS NULL THEN '' ELSE ',' || p_data END
            || '}';

    INSERT INTO chat.events (conversation_id, seq, type, message_id,
                             subject, payload)
    VALUES (p_conversation, p_seq, p_type, p_message_id, p_subject,
            v_event);

    RETURN ROW(NULL, chat.conversation_channel(p_conversation),
               chat.wire(p_seq, p_type, p_subject, v_event))::chat.reply;
END
$$;

-- A message on a user's own channel: "follow <conversation> <seq>" (start
-- following it there; the JSON, if any, is delivered first) or "event"
-- (deliver the JSON to the user's connections).
CREATE FUNCTION chat.notify(p_tenant text, p_user text, p_header text,
                            p_event text)
RETURNS chat.reply LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(NULL, chat.user_channel(p_tenant, p_user),
               p_header || E'\n' || coalesce(p_event, ''))::chat.reply
$$;

-- a JSON member "key":value
CREATE FUNCTION chat.kv(p_key text, p_value json) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_json(p_key) || ':' || coalesce(p_value::text, 'null')
$$;


-- access

-- The caller's membership; a conversation the caller is not in does not
-- exist for them.  With p_lock the conversation row is locked first: it
-- orders every writer of the conversation and guards last_seq.
CREATE FUNCTION chat.enter(p_tenant text, p_user text, p_conversation bigint,
                           p_lock boolean,
                           OUT c chat.conversations, OUT m chat.members)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lock THEN
        SELECT * INTO c FROM chat.conversations
         WHERE id = p_conversation AND tenant_id = p_tenant
           FOR UPDATE;
    ELSE
        SELECT * INTO c FROM chat.conversations
         WHERE id = p_conversation AND tenant_id = p_tenant;
    END IF;

    IF FOUND THEN
        SELECT * INTO m FROM chat.members
         WHERE conversation_id = p_conversation AND user_id = p_user;
    END IF;

    IF m.user_id IS NULL THEN
        PERFORM chat.fail(404, 'conversation not found');
    END IF;
END
$$;

CREATE FUNCTION chat.require_rank(p_member chat.members, p_role text,
                                  p_what text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF chat.rank(p_member.role) < chat.rank(p_role) THEN
        PERFORM chat.fail(403, p_what);
    END IF;
END
$$;

CREATE FUNCTION chat.require_open(p_conversation chat.conversations)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_conversation.archived_at IS NOT NULL THEN
        PERFORM chat.fail(403, 'the conversation is archived and read-only');
    END IF;
END
$$;


-- objects

CREATE FUNCTION chat.file_json(f chat.files) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(x) FROM (
        SELECT f.id, f.name, f.size, f.content_type,
               '/files/' || f.id AS url, NULL::text AS thumbnail_url
    ) x
$$;

-- a message's reactions by emoji, in the order they were first given
CREATE TYPE chat.reaction AS (emoji text, count bigint, me boolean);

-- A message as p_viewer sees it; with p_viewer NULL (an event, sent to
-- everyone alike) "me" of each reaction is null.
CREATE FUNCTION chat.message_json(m chat.messages, p_viewer text)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT row_to_json(x) FROM (
        SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.type,
               m.content,
               coalesce((SELECT '[' || string_agg(chat.file_json(f)::text,
                                                  ',' ORDER BY mf.position)
                                || ']'
                           FROM chat.message_files mf
                           JOIN chat.files f ON f.id = mf.file_id
                          WHERE mf.message_id = m.id
                            AND m.deleted_at IS NULL), '[]')::json
                   AS attachments,
               m.reply_to, m.reply_count,
               (SELECT row_to_json(f) FROM (
                    SELECT m.fwd_conversation_id AS conversation_id,
                           m.fwd_message_id AS message_id,
                           m.fwd_sender_id AS sender_id) f
                 WHERE m.fwd_message_id IS NOT NULL) AS forwarded_from,
               m.mentions,
               coalesce((SELECT '[' || string_agg(row_to_json(
                                    (r.emoji, r.count, r.me)::chat.reaction
                                )::text, ',' ORDER BY r.first_at, r.emoji)
                                || ']'
                           FROM (SELECT emoji, count(*) AS count,
                                        CASE WHEN p_viewer IS NOT NULL THEN
                                            bool_or(user_id = p_viewer)
                                        END AS me,
                                        min(created_at) AS first_at
                                   FROM chat.reactions
                                  WHERE message_id = m.id
                                  GROUP BY emoji) r),
                        '[]')::json AS reactions,
               m.edited_at IS NOT NULL AS is_edited,
               chat.ts(m.edited_at) AS edited_at,
               m.deleted_at IS NOT NULL AS is_deleted,
               m.is_pinned, m.client_id,
               chat.ts(m.created_at) AS created_at
    ) x
$$;

-- A conversation as its member sees it.  In events, which every member
-- receives alike, "me" and "last_message" are null: a stored event must
-- not keep a message that may be deleted later.
CREATE FUNCTION chat.conversation_json(c chat.conversations, m chat.members)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT row_to_json(x) FROM (
        SELECT c.id, c.type, c.title, c.description, c.avatar_url,
               c.owner_id, chat.ts(c.created_at) AS created_at,
               chat.ts(c.updated_at) AS updated_at, c.last_seq,
               (SELECT chat.message_json(lm, m.user_id)
                  FROM chat.messages lm
                 WHERE lm.id = c.last_message_id
                   AND m.user_id IS NOT NULL) AS last_message,
               c.member_count,
               c.archived_at IS NOT NULL AS is_archived,
               CASE WHEN m.user_id IS NOT NULL THEN
                   (SELECT row_to_json(me) FROM (
                       SELECT m.role, m.pinned, m.archived,
                              chat.ts(m.muted_until) AS muted_until,
                              m.last_read_seq,
                              c.message_count - m.read_message_count
                                  AS unread_count,
                              (SELECT count(*) FROM chat.mentions x
                                WHERE x.tenant_id = m.tenant_id
                                  AND x.user_id = m.user_id
                                  AND x.conversation_id = c.id
                                  AND x.seq > m.last_read_seq)
                                  AS unread_mentions) me)
               END AS me
    ) x
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

-- a list answer; p_items is the items joined by commas
CREATE FUNCTION chat.page(p_items text, p_cursor text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"items":[' || coalesce(p_items, '') || ']'
           || ',"next_cursor":' || coalesce(to_json(p_cursor)::text, 'null')
           || '}'
$$;

CREATE FUNCTION chat.limit_of(a jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce((a->>'limit')::integer, 50)
$$;


-- conversations

CREATE FUNCTION chat.api_conversation_create(p_tenant text, p_user text,
                                             p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_type   text := a->>'type';
    v_others text[];
    v_key    text;
    c        chat.conversations;
    m        chat.members;
BEGIN
    SELECT coalesce(array_agg(DISTINCT x), '{}') INTO v_others
      FROM jsonb_array_elements_text(coalesce(a->'member_ids', '[]')) x
     WHERE x <> p_user;

    PERFORM chat.touch_users(p_tenant, p_user, p_name, v_others);

    IF v_type = 'direct' THEN
        IF cardinality(v_others) <> 1 THEN
            PERFORM chat.fail(400, '"member_ids": a direct conversation '
                                   'names exactly one other user');
        END IF;

        IF a->>'title' IS NOT NULL OR a->>'description' IS NOT NULL
           OR a->>'avatar_url' IS NOT NULL
        THEN
            PERFORM chat.fail(400, '"title": a direct conversation has no '
                                   'title, description or avatar');
        END IF;

        v_key := least(p_user COLLATE "C", v_others[1] COLLATE "C")
                 || E'\n'
                 || greatest(p_user COLLATE "C", v_others[1] COLLATE "C");

        -- concurrent creators wait here for each other: one row wins
        INSERT INTO chat.conversations (tenant_id, type, direct_key,
                                        member_count)
        VALUES (p_tenant, 'direct', v_key, 2)
        ON CONFLICT (tenant_id, direct_key) WHERE direct_key IS NOT NULL
        DO NOTHING
        RETURNING * INTO c;

        IF c.id IS NULL THEN
            SELECT * INTO c FROM chat.conversations
             WHERE tenant_id = p_tenant AND direct_key = v_key;
            SELECT * INTO m FROM chat.members
             WHERE conversation_id = c.id AND user_id = p_user;
            RETURN NEXT chat.answer(200, chat.conversation_json(c, m)::text);
            RETURN;
        END IF;

        INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
        VALUES (c.id, p_tenant, p_user, 'member'),
               (c.id, p_tenant, v_others[1], 'member');

    ELSE
        INSERT INTO chat.conversations (tenant_id, type, title, description,
                                        avatar_url, owner_id, member_count)
        VALUES (p_tenant, v_type, a->>'title', a->>'description',
                a->>'avatar_url', p_user, 1 + cardinality(v_others))
        RETURNING * INTO c;

        INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
        SELECT c.id, p_tenant, p_user, 'owner'
        UNION ALL
        SELECT c.id, p_tenant, u, 'member' FROM unnest(v_others) u;
    END IF;

    SELECT * INTO m FROM chat.members
     WHERE conversation_id = c.id AND user_id = p_user;

    RETURN NEXT chat.answer(201, chat.conversation_json(c, m)::text);

    -- each member's connections follow it from its first event
    RETURN QUERY
        SELECT (chat.notify(p_tenant, x.user_id, 'follow ' || c.id || ' 1',
                            '{"type":"conversation_created","conversation":'
                            || chat.conversation_json(c, NULL) || '}')).*
          FROM chat.members x
         WHERE x.conversation_id = c.id;
END
$$;

-- keyset paging over (pinned, last activity, id), all descending
CREATE FUNCTION chat.api_conversation_list(p_tenant text, p_user text,
                                           p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_limit    integer := chat.limit_of(a);
    v_archived boolean := coalesce((a->>'archived')::boolean, false);
    v_cursor   text[];
    v_pinned   boolean := true;
    v_activity timestamptz := 'infinity';
    v_id       bigint := 9007199254740992;
    v_items    text;
    v_count    integer;
    v_next     text;
BEGIN
    IF a ? 'cursor' THEN
        v_cursor := regexp_match(a->>'cursor',
                                 '^([01])\.(-?[0-9]{1,19})\.([0-9]{1,16})$');
        IF v_cursor IS NULL THEN
            PERFORM chat.fail(400, '"cursor": is not a cursor of this list');
        END IF;
        v_pinned := v_cursor[1] = '1';
        v_activity := 'epoch'::timestamptz
                      + (v_cursor[2] || ' microseconds')::interval;
        v_id := v_cursor[3]::bigint;
    END IF;

    -- sorted on the keys alone; the rows of the page are read after
    WITH page AS (
        SELECT m.conversation_id AS id, m.pinned, c.last_activity_at,
               row_number() OVER (ORDER BY m.pinned DESC,
                                  c.last_activity_at DESC,
                                  m.conversation_id DESC) AS n
          FROM chat.members m
          JOIN chat.conversations c ON c.id = m.conversation_id
         WHERE m.tenant_id = p_tenant AND m.user_id = p_user
           AND m.archived = v_archived
           AND (m.pinned, c.last_activity_at, c.id)
               < (v_pinned, v_activity, v_id)
         ORDER BY m.pinned DESC, c.last_activity_at DESC, c.id DESC
         LIMIT v_limit + 1
    )
    SELECT string_agg(chat.conversation_json(c, m)::text, ','
                      ORDER BY p.n) FILTER (WHERE p.n <= v_limit),
           count(*),
           max(CASE WHEN p.n = v_limit THEN
                   CASE WHEN p.pinned THEN '1' ELSE '0' END || '.'
                   || (extract(epoch FROM p.last_activity_at) * 1e6)::bigint
                   || '.' || p.id
               END)
      INTO v_items, v_count, v_next
      FROM page p
      JOIN chat.conversations c ON c.id = p.id
      JOIN chat.members m ON m.conversation_id = p.id
                         AND m.user_id = p_user;

    IF v_count <= v_limit THEN
        v_next := NULL;
    END IF;

    RETURN NEXT chat.answer(200, chat.page(v_items, v_next));
END
$$;

CREATE FUNCTION chat.api_conversation_get(p_tenant text, p_user text,
                                          p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);
    RETURN NEXT chat.answer(200, chat.conversation_json(e.c, e.m)::text);
END
$$;

CREATE FUNCTION chat.api_conversation_update(p_tenant text, p_user text,
                                             p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e     record;
    c     chat.conversations;
    v_seq bigint;
BEGIN
    IF NOT (a ?| ARRAY['title', 'description', 'avatar_url']) THEN
        PERFORM chat.fail(400, '"body": names nothing to change');
    END IF;

    PERFORM chat.touch_user(p_tenant, p_user, p_name);
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, true);

    IF (e.c).type = 'direct' THEN
        PERFORM chat.fail(403, 'a direct conversation has no title, '
                               'description or avatar');
    END IF;

    PERFORM chat.require_rank(e.m, 'admin',
                              'only the owner or an admin may change the '
                              'conversation');
    PERFORM chat.require_open(e.c);

    v_seq := chat.next_seq((e.c).id);

    UPDATE chat.conversations
       SET title = CASE WHEN a ? 'title' THEN a->>'title' ELSE title END,
           description = CASE WHEN a ? 'description'
                              THEN a->>'description' ELSE description END,
           avatar_url = CASE WHEN a ? 'avatar_url'
                             THEN a->>'avatar_url' ELSE avatar_url END,
           updated_at = now()
     WHERE id = (e.c).id
    RETURNING * INTO c;

    RETURN NEXT chat.answer(200, chat.conversation_json(c, e.m)::text);
    RETURN NEXT chat.emit(c.id, v_seq, 'conversation_updated',
                          chat.kv('conversation',
                                  chat.conversation_json(c, NULL)));
END
$$;

-- the owner archives a conversation for everyone: it becomes read-only
CREATE FUNCTION chat.api_conversation_archive(p_tenant text, p_user text,
                                              p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e     record;
    c     chat.conversations;
    v_seq bigint;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, true);

    IF (e.m).role <> 'owner' THEN
        PERFORM chat.fail(403, 'only the owner may archive the conversation '
                               'for everyone');
    END IF;

    RETURN NEXT chat.answer(204, NULL);

    IF (e.c).archived_at IS NOT NULL THEN
        RETURN;
    END IF;

    v_seq := chat.next_seq((e.c).id);

    UPDATE chat.conversations
       SET archived_at = now(), updated_at = now()
     WHERE id = (e.c).id
    RETURNING * INTO c;

    RETURN NEXT chat.emit(c.id, v_seq, 'conversation_updated',
                          chat.kv('conversation',
                                  chat.conversation_json(c, NULL)));
END
$$;

-- my own settings of a conversation: no event, others do not see them
CREATE FUNCTION chat.api_conversation_settings(p_tenant text, p_user text,
                                               p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e record;
    m chat.members;
BEGIN
    IF NOT (a ?| ARRAY['pinned', 'archived', 'muted_until']) THEN
        PERFORM chat.fail(400, '"body": names nothing to change');
    END IF;

    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);

    UPDATE chat.members
       SET pinned = coalesce((a->>'pinned')::boolean, pinned),
           archived = coalesce((a->>'archived')::boolean, archived),
           muted_until = CASE WHEN a ? 'muted_until'
                              THEN (a->>'muted_until')::timestamptz
                              ELSE muted_until END
     WHERE conversation_id = (e.c).id AND user_id = p_user
    RETURNING * INTO m;

    RETURN NEXT chat.answer(200, chat.conversation_json(e.c, m)::text);
END
$$;


-- members

CREATE FUNCTION chat.api_member_list(p_tenant text, p_user text,
                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e       record;
    v_limit integer := chat.limit_of(a);
    v_after text := '';
    v_items text;
    v_count integer;
    v_last  text;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);

    IF a ? 'cursor' THEN
        BEGIN
            v_after := convert_from(decode(a->>'cursor', 'hex'), 'UTF8');
        EXCEPTION WHEN OTHERS THEN
            PERFORM chat.fail(400, '"cursor": is not a cursor of this list');
        END;
    END IF;

    WITH page AS (
        SELECT m FROM chat.members m
         WHERE m.conversation_id = (e.c).id
           AND m.user_id COLLATE "C" > v_after COLLATE "C"
         ORDER BY m.user_id COLLATE "C"
         LIMIT v_limit + 1
    ), numbered AS (
        SELECT m, row_number() OVER (ORDER BY (m).user_id COLLATE "C") AS n
          FROM page
    )
    SELECT string_agg(chat.member_json(m)::text, ','
                          ORDER BY n)
               FILTER (WHERE n <= v_limit),
           count(*),
           max(CASE WHEN n = v_limit THEN (m).user_id END)
      INTO v_items, v_count, v_last
      FROM numbered;

    RETURN NEXT chat.answer(200, chat.page(v_items,
        CASE WHEN v_count > v_limit
             THEN encode(convert_to(v_last, 'UTF8'), 'hex') END));
END
$$;

-- owner and admin add members; an admin adds members and moderators
CREATE FUNCTION chat.api_member_add(p_tenant text, p_user text,
                                    p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e       record;
    v_role  text := coalesce(a->>'role', 'member');
    v_users text[];
    v_user  text;
    v_seq   bigint;
    v_items text;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, true);

    IF (e.c).type = 'direct' THEN
        PERFORM chat.fail(403, 'a direct conversation keeps its two '
                               'members');
    END IF;

    PERFORM chat.require_rank(e.m, 'admin',
                              'only the owner or an admin may add members');
    PERFORM chat.require_open(e.c);

    IF chat.rank(v_role) >= chat.rank((e.m).role) THEN
        PERFORM chat.fail(403, '"role": you may only give roles below '
                               'your own');
    END IF;

    SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}') INTO v_users
      FROM jsonb_array_elements_text(a->'user_ids') x;

    PERFORM chat.touch_users(p_tenant, p_user, p_name, v_users);

    FOR v_user IN
        SELECT u FROM unnest(v_users) u
         WHERE NOT EXISTS (SELECT 1 FROM chat.members
                            WHERE conversation_id = (e.c).id
                              AND user_id = u)
         ORDER BY u
    LOOP
        v_seq := chat.next_seq((e.c).id);

        -- a newcomer has nothing unread from before it came
        INSERT INTO chat.members (conversation_id, tenant_id, user_id, role,
                                  joined_seq, last_read_seq,
                                  read_message_count)
        SELECT (e.c).id, p_tenant, v_user, v_role, v_seq, v_seq,
               message_count
          FROM chat.conversations WHERE id = (e.c).id;

        UPDATE chat.conversations SET member_count = member_count + 1
         WHERE id = (e.c).id;

        RETURN NEXT chat.emit((e.c).id, v_seq, 'member_added',
                              chat.kv('user_id', to_json(v_user)) || ','
                              || chat.kv('role', to_json(v_role)),
                              NULL, v_user);
        RETURN NEXT chat.notify(p_tenant, v_user,
                                'follow ' || (e.c).id || ' ' || v_seq, NULL);
    END LOOP;

    SELECT string_agg(chat.member_json(m)::text, ',' ORDER BY m.user_id)
      INTO v_items
      FROM chat.members m
     WHERE m.conversation_id = (e.c).id AND m.user_id = ANY (v_users);

    RETURN NEXT chat.answer(200, chat.page(v_items, NULL));
END
$$;

-- The owner sets any role, and hands ownership over by making another
-- member owner (becoming admin); an admin sets member and moderator.
CREATE FUNCTION chat.api_member_update(p_tenant text, p_user text,
                                       p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e        record;
    t        chat.members;
    v_role   text := a->>'role';
    v_seq    bigint;
BEGIN
    PERFORM chat.touch_user(p_tenant, p_user, p_name);
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, true);

    IF (e.c).type = 'direct' THEN
        PERFORM chat.fail(403, 'a direct conversation has no roles');
    END IF;

    PERFORM chat.require_open(e.c);

    SELECT * INTO t FROM chat.members
     WHERE conversation_id = (e.c).id AND user_id = a->>'user_id'
       FOR UPDATE;

    IF NOT FOUND THEN
        PERFORM chat.fail(404, 'member not found');
    END IF;

    IF t.user_id = p_user THEN
        PERFORM chat.fail(403, 'you cannot change your own role; the owner '
                               'hands ownership to another member');
    END IF;

    IF (e.m).role <> 'owner'
       AND (chat.rank((e.m).role) < chat.rank('admin')
            OR chat.rank(t.role) >= chat.rank((e.m).role)
            OR chat.rank(v_role) >= chat.rank((e.m).role))
    THEN
        PERFORM chat.fail(403, 'you may only set roles below your own on '
                               'members below you');
    END IF;

    IF t.role = v_role THEN
        RETURN NEXT chat.answer(200, chat.member_json(t)::text);
        RETURN;
    END IF;

    IF v_role = 'owner' THEN
        v_seq := chat.next_seq((e.c).id);
        UPDATE chat.members SET role = 'admin'
         WHERE conversation_id = (e.c).id AND user_id = p_user;
        UPDATE chat.conversations SET owner_id = t.user_id,
                                      updated_at = now()
         WHERE id = (e.c).id;
        RETURN NEXT chat.emit((e.c).id, v_seq, 'member_updated',
                              chat.kv('user_id', to_json(p_user)) || ','
                              || chat.kv('role', to_json('admin'::text)));
    END IF;

    v_seq := chat.next_seq((e.c).id);

    UPDATE chat.members SET role = v_role
     WHERE conversation_id = (e.c).id AND user_id = t.user_id
    RETURNING * INTO t;

    RETURN NEXT chat.emit((e.c).id, v_seq, 'member_updated',
                          chat.kv('user_id', to_json(t.user_id)) || ','
                          || chat.kv('role', to_json(v_role)));
    RETURN NEXT chat.answer(200, chat.member_json(t)::text);
END
$$;

-- Moderators and above remove members below them; anyone may leave,
-- except the owner while others remain.
CREATE FUNCTION chat.api_member_remove(p_tenant text, p_user text,
                                       p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e     record;
    t     chat.members;
    v_seq bigint;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, true);

    IF (e.c).type = 'direct' THEN
        PERFORM chat.fail(403, 'a direct conversation keeps its two '
                               'members; archive it instead');
    END IF;

    SELECT * INTO t FROM chat.members
     WHERE conversation_id = (e.c).id AND user_id = a->>'user_id';

    IF NOT FOUND THEN
        PERFORM chat.fail(404, 'member not found');
    END IF;

    IF t.user_id = p_user THEN
        IF t.role = 'owner' AND (e.c).member_count > 1 THEN
            PERFORM chat.fail(409, 'the owner cannot leave while others '
                                   'remain; hand ownership over first');
        END IF;

    ELSIF chat.rank((e.m).role) < chat.rank('moderator')
          OR chat.rank(t.role) >= chat.rank((e.m).role)
    THEN
        PERFORM chat.fail(403, 'you may only remove members below you');
    END IF;

    v_seq := chat.next_seq((e.c).id);

    DELETE FROM chat.members
     WHERE conversation_id = (e.c).id AND user_id = t.user_id;

    UPDATE chat.conversations
       SET member_count = member_count - 1,
           archived_at = CASE WHEN member_count = 1 THEN now()
                              ELSE archived_at END
     WHERE id = (e.c).id;

    RETURN NEXT chat.answer(204, NULL);
    RETURN NEXT chat.emit((e.c).id, v_seq, 'member_removed',
                          chat.kv('user_id', to_json(t.user_id)),
                          NULL, t.user_id);
END
$$;
