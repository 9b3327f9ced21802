-- ngx_chat: messages, their pins and reactions.
--
-- A message takes the next seq of its conversation and its next
-- message_no in one update of the conversation row, the row every writer of
-- the conversation locks first.  Unread counts are differences of
-- message_no counters (conversations.message_count minus
-- members.read_message_count), so they cost nothing per message read.

-- The conversation an action on a message is about: named, or (over
-- WebSocket) that of the message, if the caller is a member there.
CREATE FUNCTION chat.conversation_of(p_tenant text, p_user text, a jsonb)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id bigint;
BEGIN
    IF a->>'conversation_id' IS NOT NULL THEN
        RETURN (a->>'conversation_id')::bigint;
    END IF;

    SELECT m.conversation_id INTO v_id
      FROM chat.messages m
      JOIN chat.members mb ON mb.conversation_id = m.conversation_id
                          AND mb.user_id = p_user
     WHERE m.id = (a->>'message_id')::bigint AND m.tenant_id = p_tenant;

    IF v_id IS NULL THEN
        PERFORM chat.fail(404, 'message not found');
    END IF;

    RETURN v_id;
END
$$;

CREATE FUNCTION chat.message_in(p_conversation bigint, p_message bigint)
RETURNS chat.messages LANGUAGE plpgsql AS $$
DECLARE
    m chat.messages;
BEGIN
    SELECT * INTO m FROM chat.messages
     WHERE id = p_message AND conversation_id = p_conversation;
    IF NOT FOUND THEN
        PERFORM chat.fail(404, 'message not found');
    END IF;
    RETURN m;
END
$$;

CREATE FUNCTION chat.require_not_deleted(m chat.messages)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF m.deleted_at IS NOT NULL THEN
        PERFORM chat.fail(410, 'the message was deleted');
    END IF;
END
$$;

-- who may post: members of direct and group, owner and admin of a channel
CREATE FUNCTION chat.require_poster(c chat.conversations, m chat.members)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM chat.require_open(c);
    IF c.type = 'channel' AND chat.rank(m.role) < chat.rank('admin') THEN
        PERFORM chat.fail(403, 'only the owner and admins post in a channel');
    END IF;
END
$$;

CREATE FUNCTION chat.check_content(p_type text, p_content text,
                                   p_files integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_geo text[];
BEGIN
    IF p_type = 'system' THEN
        PERFORM chat.fail(400, '"type": system messages come from the '
                               'server only');
    END IF;

    IF p_type IN ('file', 'image', 'video', 'audio') AND p_files = 0 THEN
        PERFORM chat.fail(400, '"attachments": a ' || p_type
                               || ' message needs a file');
    END IF;

    -- blank in any script: the spaces Unicode has besides ASCII's
    IF p_files = 0 AND coalesce(p_content, '')
           ~ ('^[\s\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f'
              '\u205f\u3000\ufeff]*$')
    THEN
        PERFORM chat.fail(400, '"content": must not be empty');
    END IF;

    IF p_type = 'location' THEN
        v_geo := regexp_match(coalesce(p_content, ''),
            '^geo:(-?[0-9]{1,3}(?:\.[0-9]+)?),(-?[0-9]{1,3}(?:\.[0-9]+)?)'
            '(?:[;,?].*)?$');
        IF v_geo IS NULL OR abs(v_geo[1]::numeric) > 90
           OR abs(v_geo[2]::numeric) > 180
        THEN
            PERFORM chat.fail(400, '"content": a location is a geo:lat,lon '
                                   'URI');
        END IF;
    END IF;
END
$$;

-- The one way a message is made, for send and forward alike.  The caller
-- holds the conversation's row lock.  Returns the message and its events.
-- The message carries its flag of files (has_files) from the start: its
-- JSON is made before a trigger would set it.
CREATE FUNCTION chat.post(c chat.conversations, p_sender text, p_type text,
                          p_content text, p_reply_to bigint, p_mentions text[],
                          p_files bigint[], p_client_id text,
                          p_fwd chat.messages, OUT msg chat.messages,
                          OUT events chat.reply[])
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r
      FROM chat.post_message(c, p_sender, p_type, p_content, p_reply_to,
                             p_mentions, p_files, p_client_id, p_fwd, NULL);
    msg := r.msg;
    events := r.events;
END
$$;

-- The same, with the args of a poll (p_poll) where the message is one
CREATE FUNCTION chat.post_message(c chat.conversations, p_sender text,
                                  p_type text, p_content text,
                                  p_reply_to bigint, p_mentions text[],
                                  p_files bigint[], p_client_id text,
                                  p_fwd chat.messages, p_poll jsonb,
                                  OUT msg chat.messages,
                                  OUT events chat.reply[])
LANGUAGE plpgsql AS $$
DECLARE
    v_id   bigint;
    v_seq  bigint;
    v_no   bigint;
    v_user text;
    v_json json;
BEGIN
    -- the message's id first, so that the conversation's row is written
    -- once: its seq, its count and its last message in one update (the
    -- foreign key of last_message_id is checked at commit)
    v_id := nextval(pg_get_serial_sequence('chat.messages', 'id'));

    UPDATE chat.conversations
       SET last_seq = last_seq + 1, message_count = message_count + 1,
           last_activity_at = now(), last_message_id = v_id
     WHERE id = c.id
    RETURNING last_seq, message_count INTO v_seq, v_no;

    INSERT INTO chat.messages (id, conversation_id, tenant_id, seq,
                               message_no, sender_id, type, content,
                               reply_to, mentions, client_id,
                               fwd_conversation_id, fwd_message_id,
                               fwd_sender_id, has_files, bot)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, c.id, c.tenant_id, v_seq, v_no, p_sender, p_type,
            p_content, p_reply_to, p_mentions, p_client_id,
            p_fwd.conversation_id, p_fwd.id, p_fwd.sender_id,
            cardinality(p_files) > 0,
            coalesce((SELECT u.bot FROM chat.users u
                       WHERE u.tenant_id = c.tenant_id
                         AND u.id = p_sender), false))
    RETURNING * INTO msg;

    INSERT INTO chat.message_files (message_id, file_id, position)
    SELECT msg.id, f, n - 1
      FROM unnest(p_files) WITH ORDINALITY AS x(f, n);

    -- a poll's row before the message's JSON, which shows it; a poll
    -- forwarded is the same question, without its votes
    IF p_type = 'poll' AND p_fwd.id IS NOT NULL THEN
        INSERT INTO chat.polls (message_id, options, multiple, anonymous,
                                closes_at)
        SELECT msg.id, options, multiple, anonymous, closes_at
          FROM chat.polls WHERE message_id = p_fwd.id;
    ELSIF p_type = 'poll' THEN
        PERFORM chat.poll_create(msg.id, p_poll);
    END IF;

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

    -- who is away hears of it later, if this commits
    PERFORM chat.outbox_add(c, msg);

    FOREACH v_user IN ARRAY p_mentions LOOP
        CONTINUE WHEN v_user = p_sender;
        events := events || chat.notify(c.tenant_id, v_user, 'event',
            '{"type":"mention","conversation_id":' || c.id
            || ',"message":' || v_json || '}');
    END LOOP;
END
$$;

CREATE FUNCTION chat.api_message_send(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e          record;
    p          record;
    m          chat.messages;
    v_type     text := coalesce(a->>'type', 'text');
    v_mentions text[];
    v_files    bigint[];
    v_bad      text;
    v_reply_to bigint := (a->>'reply_to')::bigint;
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, true);

    -- a retry: the first message, whatever this one says (the lock above
    -- made concurrent retries wait for the first to commit)
    IF a->>'client_id' IS NOT NULL THEN
        SELECT * INTO m FROM chat.messages
         WHERE conversation_id = (e.c).id AND sender_id = p_user
           AND client_id = a->>'client_id';
        IF FOUND THEN
            RETURN NEXT chat.answer(200, chat.message_json(m, p_user)::text);
            RETURN;
        END IF;
    END IF;

    PERFORM chat.require_poster(e.c, e.m);

    -- in the order given, each once
    SELECT coalesce(array_agg(x ORDER BY n), '{}') INTO v_mentions
      FROM (SELECT x, min(n) AS n
              FROM jsonb_array_elements_text(coalesce(a->'mentions', '[]'))
                   WITH ORDINALITY AS t(x, n)
             GROUP BY x) u;

    SELECT u INTO v_bad FROM unnest(v_mentions) u
     WHERE NOT EXISTS (SELECT 1 FROM chat.members
                        WHERE conversation_id = (e.c).id AND user_id = u)
     LIMIT 1;
    IF FOUND THEN
        PERFORM chat.fail(400, '"mentions": ' || v_bad
                               || ' is not a member of the conversation');
    END IF;

    SELECT coalesce(array_agg(x::bigint ORDER BY n), '{}') INTO v_files
      FROM jsonb_array_elements_text(coalesce(a->'attachments', '[]'))
           WITH ORDINALITY AS t(x, n);

    IF cardinality(v_files) <> (SELECT count(*) FROM chat.files
                                 WHERE id = ANY (v_files)
                                   AND tenant_id = p_tenant
                                   AND uploader_id = p_user)
    THEN
        PERFORM chat.fail(400, '"attachments": names a file you did not '
                               'upload');
    END IF;

    PERFORM chat.check_content(v_type, a->>'content', cardinality(v_files));

    IF v_reply_to IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM chat.messages
         WHERE id = v_reply_to AND conversation_id = (e.c).id)
    THEN
        PERFORM chat.fail(400, '"reply_to": no such message in this '
                               'conversation');
    END IF;

    IF (v_type = 'poll') <> (a ? 'poll_options') THEN
        PERFORM chat.fail(400, '"poll_options": a poll has them, and only '
                               'a poll');
    END IF;

    p := chat.post_message(e.c, p_user, v_type, a->>'content', v_reply_to,
                           v_mentions, v_files, a->>'client_id', NULL, a);

    RETURN NEXT chat.answer(201, chat.message_json(p.msg, p_user)::text);
    RETURN QUERY SELECT * FROM unnest(p.events);
END
$$;

CREATE FUNCTION chat.api_message_forward(p_tenant text, p_user text,
                                         p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    src   record;
    dst   record;
    m     chat.messages;
    p     record;
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);

    src := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                      false);
    m := chat.message_in((src.c).id, (a->>'message_id')::bigint);
    PERFORM chat.require_not_deleted(m);

    BEGIN
        dst := chat.enter(p_tenant, p_user, (a->>'target_id')::bigint, true);
    EXCEPTION WHEN SQLSTATE 'CH404' THEN
        PERFORM chat.fail(400, '"conversation_id": no such conversation '
                               'of yours to forward to');
    END;

    PERFORM chat.require_poster(dst.c, dst.m);

    p := chat.post(dst.c, p_user, m.type, m.content, NULL, '{}',
                   ARRAY(SELECT file_id FROM chat.message_files
                          WHERE message_id = m.id ORDER BY position),
                   NULL, m);

    RETURN NEXT chat.answer(201, chat.message_json(p.msg, p_user)::text);
    RETURN QUERY SELECT * FROM unnest(p.events);
END
$$;

-- One page of history, each branch a plain index range scan: the main
-- history on (conversation_id, seq), a thread on (reply_to, seq).
CREATE FUNCTION chat.history(p_conversation bigint, p_thread bigint,
                             p_before bigint, p_after bigint,
                             p_limit integer)
RETURNS TABLE (m chat.messages, n bigint) LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_thread IS NULL AND p_after IS NULL THEN
        RETURN QUERY SELECT x, row_number() OVER (ORDER BY x.seq DESC)
          FROM chat.messages x
         WHERE x.conversation_id = p_conversation AND x.seq < p_before
         ORDER BY x.seq DESC LIMIT p_limit;
    ELSIF p_thread IS NULL THEN
        RETURN QUERY SELECT x, row_number() OVER (ORDER BY x.seq)
          FROM chat.messages x
         WHERE x.conversation_id = p_conversation
           AND x.seq > p_after AND x.seq < p_before
         ORDER BY x.seq LIMIT p_limit;
    ELSIF p_after IS NULL THEN
        RETURN QUERY SELECT x, row_number() OVER (ORDER BY x.seq DESC)
          FROM chat.messages x
         WHERE x.reply_to = p_thread AND x.seq < p_before
         ORDER BY x.seq DESC LIMIT p_limit;
    ELSE
        RETURN QUERY SELECT x, row_number() OVER (ORDER BY x.seq)
          FROM chat.messages x
         WHERE x.reply_to = p_thread
           AND x.seq > p_after AND x.seq < p_before
         ORDER BY x.seq LIMIT p_limit;
    END IF;
END
$$;

-- History by seq: newest first with "before" (or neither), oldest first
-- with "after"; both bound the range.  A cursor continues a page: "b<seq>"
-- means before, "a<seq>" after.
CREATE FUNCTION chat.api_message_list(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    e        record;
    v_limit  integer := chat.limit_of(a);
    v_before bigint := (a->>'before')::bigint;
    v_after  bigint := (a->>'after')::bigint;
    v_thread bigint := (a->>'thread')::bigint;
    v_cursor text[];
    v_items  text;
    v_count  integer;
    v_edge   bigint;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);

    IF a ? 'cursor' THEN
        v_cursor := regexp_match(a->>'cursor', '^([ab])([0-9]{1,16})$');
        IF v_cursor IS NULL THEN
            PERFORM chat.fail(400, '"cursor": is not a cursor of this list');
        END IF;
        IF v_cursor[1] = 'b' THEN
            v_before := v_cursor[2]::bigint;
        ELSE
            v_after := v_cursor[2]::bigint;
        END IF;
    END IF;

    IF v_thread IS NOT NULL THEN
        PERFORM chat.message_in((e.c).id, v_thread);
    END IF;

    SELECT string_agg(chat.message_json(h.m, p_user)::text, ','
                          ORDER BY h.n)
               FILTER (WHERE h.n <= v_limit),
           count(*),
           max(CASE WHEN h.n = v_limit THEN (h.m).seq END)
      INTO v_items, v_count, v_edge
      FROM chat.history((e.c).id, v_thread,
                        coalesce(v_before, 9007199254740992), v_after,
                        v_limit + 1) h;

    RETURN NEXT chat.answer(200, chat.page(v_items,
        CASE WHEN v_count > v_limit
             THEN CASE WHEN v_after IS NOT NULL THEN 'a' ELSE 'b' END
                  || v_edge END));
END
$$;

CREATE FUNCTION chat.api_message_get(p_tenant text, p_user text,
                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    e record;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);
    RETURN NEXT chat.answer(200, chat.message_json(
        chat.message_in((e.c).id, (a->>'message_id')::bigint),
        p_user)::text);
END
$$;

-- the sender edits, within the edit window the module passes
CREATE FUNCTION chat.api_message_edit(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e     record;
    m     chat.messages;
    v_seq bigint;
BEGIN
    e := chat.enter(p_tenant, p_user,
                    chat.conversation_of(p_tenant, p_user, a), true);
    m := chat.message_in((e.c).id, (a->>'message_id')::bigint);

    PERFORM chat.require_not_deleted(m);

    IF m.sender_id <> p_user THEN
        PERFORM chat.fail(403, 'only the sender may edit a message');
    END IF;

    PERFORM chat.require_open(e.c);

    IF m.created_at + (a->>'edit_window_ms')::bigint
                      * interval '1 millisecond' < now()
    THEN
        PERFORM chat.fail(403, 'the edit window of this message has closed');
    END IF;

    PERFORM chat.check_content(m.type, a->>'content',
        (SELECT count(*)::integer FROM chat.message_files
          WHERE message_id = m.id));

    v_seq := chat.next_seq((e.c).id);

    UPDATE chat.messages SET content = a->>'content', edited_at = now()
     WHERE id = m.id
    RETURNING * INTO m;

    RETURN NEXT chat.answer(200, chat.message_json(m, p_user)::text);
    RETURN NEXT chat.emit((e.c).id, v_seq, 'message_updated',
                          chat.kv('message', chat.message_json(m, NULL)),
                          m.id);
END
$$;

-- The sender, or a moderator and above, leaves a tombstone.  The stored
-- events that carried the message are rewritten to carry the tombstone:
-- a client replaying history never sees deleted content.
CREATE FUNCTION chat.api_message_delete(p_tenant text, p_user text,
                                        p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e      record;
    m      chat.messages;
    v_seq  bigint;
    v_tomb text;
BEGIN
    e := chat.enter(p_tenant, p_user,
                    chat.conversation_of(p_tenant, p_user, a), true);
    m := chat.message_in((e.c).id, (a->>'message_id')::bigint);

    IF m.sender_id <> p_user
       AND chat.rank((e.m).role) < chat.rank('moderator')
    THEN
        PERFORM chat.fail(403, 'only the sender or a moderator may delete '
                               'a message');
    END IF;

    PERFORM chat.require_open(e.c);

    RETURN NEXT chat.answer(204, NULL);

    IF m.deleted_at IS NOT NULL THEN
        RETURN;
    END IF;

    v_seq := chat.next_seq((e.c).id);

    -- a tombstone keeps its place and its thread, nothing of what it said
    UPDATE chat.messages
       SET content = NULL, deleted_at = now(), is_pinned = false,
           mentions = '{}', fwd_conversation_id = NULL,
           fwd_message_id = NULL, fwd_sender_id = NULL
     WHERE id = m.id
    RETURNING * INTO m;

    DELETE FROM chat.mentions WHERE message_id = m.id;
    DELETE FROM chat.reactions WHERE message_id = m.id;
    DELETE FROM chat.message_files WHERE message_id = m.id;

    v_tomb := chat.message_json(m, NULL)::text;

    UPDATE chat.events
       SET payload = '{"type":' || to_json(type)
                     || ',"conversation_id":' || conversation_id
                     || ',"seq":' || seq || ',"message":' || v_tomb || '}'
     WHERE message_id = m.id
       AND type IN ('new_message', 'message_updated');

    RETURN NEXT chat.emit((e.c).id, v_seq, 'message_deleted',
                          chat.kv('message_id', to_json(m.id)), m.id);
END
$$;

-- moderators and above pin; in a direct conversation either member does
CREATE FUNCTION chat.set_pin(p_tenant text, p_user text, a jsonb,
                             p_pinned boolean)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e     record;
    m     chat.messages;
    v_seq bigint;
BEGIN
    e := chat.enter(p_tenant, p_user,
                    chat.conversation_of(p_tenant, p_user, a), true);
    m := chat.message_in((e.c).id, (a->>'message_id')::bigint);

    PERFORM chat.require_not_deleted(m);

    IF (e.c).type <> 'direct' THEN
        PERFORM chat.require_rank(e.m, 'moderator',
                                  'only moderators and above pin messages');
    END IF;

    PERFORM chat.require_open(e.c);

    IF m.is_pinned = p_pinned THEN
        RETURN NEXT chat.answer(200, chat.message_json(m, p_user)::text);
        RETURN;
    END IF;

    v_seq := chat.next_seq((e.c).id);

    UPDATE chat.messages SET is_pinned = p_pinned WHERE id = m.id
    RETURNING * INTO m;

    RETURN NEXT chat.answer(200, chat.message_json(m, p_user)::text);
    RETURN NEXT chat.emit((e.c).id, v_seq,
                          CASE WHEN p_pinned THEN 'message_pinned'
                               ELSE 'message_unpinned' END,
                          chat.kv('message_id', to_json(m.id)), m.id);
END
$$;

CREATE FUNCTION chat.api_message_pin(p_tenant text, p_user text,
                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE sql AS $$
    SELECT * FROM chat.set_pin(p_tenant, p_user, a, true)
$$;

CREATE FUNCTION chat.api_message_unpin(p_tenant text, p_user text,
                                       p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE sql AS $$
    SELECT * FROM chat.set_pin(p_tenant, p_user, a, false)
$$;

CREATE FUNCTION chat.api_pin_list(p_tenant text, p_user text,
                                  p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    e        record;
    v_limit  integer := chat.limit_of(a);
    v_before bigint := 9007199254740992;
    v_items  text;
    v_count  integer;
    v_edge   bigint;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);

    IF a ? 'cursor' THEN
        IF a->>'cursor' !~ '^[0-9]{1,16}$' THEN
            PERFORM chat.fail(400, '"cursor": is not a cursor of this list');
        END IF;
        v_before := (a->>'cursor')::bigint;
    END IF;

    WITH page AS (
        SELECT m FROM chat.messages m
         WHERE m.conversation_id = (e.c).id AND m.is_pinned
           AND m.seq < v_before
         ORDER BY m.seq DESC
         LIMIT v_limit + 1
    ), numbered AS (
        SELECT m, row_number() OVER (ORDER BY (m).seq DESC) AS n FROM page
    )
    SELECT string_agg(chat.message_json(m, p_user)::text, ','
                          ORDER BY n)
               FILTER (WHERE n <= v_limit),
           count(*),
           max(CASE WHEN n = v_limit THEN (m).seq END)
      INTO v_items, v_count, v_edge
      FROM numbered;

    RETURN NEXT chat.answer(200, chat.page(v_items,
        CASE WHEN v_count > v_limit THEN v_edge::text END));
END
$$;

-- chat_max reactions (distinct emoji on a message) and reactions_per_user
-- (of one user on a message): a new reaction past them is refused
CREATE FUNCTION chat.check_reactions(p_message bigint, p_user text,
                                     p_emoji text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM chat.reactions
         WHERE message_id = p_message AND user_id = p_user)
       >= chat.max_of('reactions_per_user', 20)
    THEN
        PERFORM chat.fail_limit('you have ' || chat.max_of(
                                'reactions_per_user', 20) || ' reactions on '
                                'this message, as many as chat_max '
                                'reactions_per_user allows');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM chat.reactions
                    WHERE message_id = p_message AND emoji = p_emoji)
       AND (SELECT count(DISTINCT emoji) FROM chat.reactions
             WHERE message_id = p_message)
           >= chat.max_of('reactions', 50)
    THEN
        PERFORM chat.fail_limit('the message has ' || chat.max_of(
                                'reactions', 50) || ' different reactions, '
                                'as many as chat_max reactions allows');
    END IF;
END
$$;

-- One reaction per user and emoji; every member may react.  The answer
-- reads the message again, with the flag the trigger set.
CREATE FUNCTION chat.set_reaction(p_tenant text, p_user text, a jsonb,
                                  p_on boolean)
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

    IF p_on AND NOT EXISTS (SELECT 1 FROM chat.reactions
                             WHERE message_id = m.id AND emoji = v_emoji
                               AND user_id = p_user)
    THEN
        PERFORM chat.check_reactions(m.id, p_user, v_emoji);
    END IF;

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

CREATE FUNCTION chat.api_reaction_add(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
    RETURN QUERY SELECT * FROM chat.set_reaction(p_tenant, p_user, a, true);
END
$$;

CREATE FUNCTION chat.api_reaction_remove(p_tenant text, p_user text,
                                         p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE sql AS $$
    SELECT * FROM chat.set_reaction(p_tenant, p_user, a, false)
$$;
