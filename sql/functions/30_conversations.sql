-- ngx_chat: conversations: direct (one per pair), group, channel and bot
-- (one user and one bot, as many rooms as they like; owned by who made it).

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
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
    PERFORM chat.policy_check(p_tenant, p_user, v_others, a);

    IF (a->>'max_members')::integer > chat.max_of('members', 10000) THEN
        PERFORM chat.fail_limit('"max_members": at most '
                                || chat.max_of('members', 10000)
                                || ' (chat_max members)');
    END IF;

    IF v_type IN ('direct', 'bot') AND a ? 'max_members' THEN
        PERFORM chat.fail(400, '"max_members": a ' || v_type
                               || ' conversation has two members');
    END IF;

    IF (a->>'max_members')::integer < 2
       OR (a->>'max_members')::integer < cardinality(v_others) + 1
    THEN
        PERFORM chat.fail(400, '"max_members": at least 2 and the members '
                               'it is made with');
    END IF;

    IF v_type = 'bot'
       AND (cardinality(v_others) <> 1
            OR (SELECT count(*) FILTER (WHERE u.bot) FROM chat.users u
                 WHERE u.tenant_id = p_tenant
                   AND u.id IN (p_user, v_others[1])) <> 1)
    THEN
        PERFORM chat.fail(400, '"member_ids": a bot conversation is one '
                               'user and one bot (a user whose token says '
                               '"bot")');
    END IF;

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
        IF cardinality(v_others) + 1 > chat.max_of('members', 10000) THEN
            PERFORM chat.fail_limit('"member_ids": a conversation has at '
                                    'most ' || chat.max_of('members', 10000)
                                    || ' members (chat_max members)');
        END IF;

        -- the groups and channels one user owns, when chat_max says
        IF chat.max_of('conversations', 0) > 0
           AND (SELECT count(*) FROM chat.conversations
                 WHERE tenant_id = p_tenant AND owner_id = p_user
                   AND archived_at IS NULL)
               >= chat.max_of('conversations', 0)
        THEN
            PERFORM chat.fail_limit('you own ' || chat.max_of('conversations',
                                    0) || ' conversations, as many as '
                                    'chat_max conversations allows');
        END IF;

        INSERT INTO chat.conversations (tenant_id, type, title, description,
                                        avatar_url, owner_id, member_count,
                                        max_members)
        VALUES (p_tenant, v_type, a->>'title', a->>'description',
                a->>'avatar_url', p_user, 1 + cardinality(v_others),
                (a->>'max_members')::integer)
        RETURNING * INTO c;

        INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
        SELECT c.id, p_tenant, p_user, 'owner'
        UNION ALL
        SELECT c.id, p_tenant, u, 'member' FROM unnest(v_others) u;
    END IF;

    SELECT * INTO m FROM chat.members
     WHERE conversation_id = c.id AND user_id = p_user;

    RETURN NEXT chat.answer(201, chat.conversation_json(c, m)::text);

    -- each member's connections follow it from its first event (and
    -- watch the other member of a direct conversation)
    RETURN QUERY
        SELECT (chat.notify(p_tenant, x.user_id, 'follow ' || c.id || ' 1'
                            || CASE WHEN v_type = 'direct'
                                    THEN ' ' || (SELECT o.user_id
                                                   FROM chat.members o
                                                  WHERE o.conversation_id
                                                        = c.id
                                                    AND o.user_id
                                                        <> x.user_id)
                                    ELSE '' END,
                            '{"type":"conversation_created","conversation":'
                            || chat.conversation_json(c, NULL) || '}')).*
          FROM chat.members x
         WHERE x.conversation_id = c.id;
END
$$;

-- keyset paging over (pinned, last activity, id), all descending
-- POST conversations/direct {user_id}: the direct conversation with that
-- user, made if it is not there yet (200 when it was, 201 when made)
CREATE FUNCTION chat.api_conversation_direct(p_tenant text, p_user text,
                                             p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
BEGIN
    IF a->>'user_id' = p_user THEN
        PERFORM chat.fail(400, '"user_id": a direct conversation is with '
                               'someone else');
    END IF;

    -- what the module added ($bot, $claims) goes along
    RETURN QUERY SELECT * FROM chat.api_conversation_create(
        p_tenant, p_user, p_name,
        (a - 'user_id')
        || jsonb_build_object('type', 'direct',
                              'member_ids', jsonb_build_array(a->'user_id')));
END
$$;

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
        -- 16 digits of microseconds since 1970 reach past 2286 and stay
        -- within what an interval holds
        v_cursor := regexp_match(a->>'cursor',
                                 '^([01])\.(-?[0-9]{1,16})\.([0-9]{1,16})$');
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

    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
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

-- The owner archives a conversation for everyone: it becomes read-only,
-- and archived for each member (out of the default list); a member may
-- still unarchive it for itself.
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

    UPDATE chat.members SET archived = true
     WHERE conversation_id = c.id AND NOT archived;

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
