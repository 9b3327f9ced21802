-- ngx_chat: fixes from review: one lock order for adding members, receipts
-- of those who were there, and a chosen offline that comes and goes unseen.
--
-- Every writer writes the caller's user row (touch_user) and then locks the
-- conversation (chat.enter).  Adding members locked the conversation first
-- and then wrote the users: an add waiting on the row of a caller whose
-- send had renamed it, while that send waited on the add's lock, was a
-- deadlock, and one of them failed with 503.  The users are written first
-- now; a refusal rolls them back with the rest.
--
-- A member added after a message starts with its read position at its own
-- member_added seq, past the message: receipts counted it as having read
-- what came before it came.  Only members who joined before a message read
-- it or have it.
--
-- A chosen offline shows offline to others, like invisible, but its
-- last_seen moved on each connect and disconnect, and so others were told
-- of each (a presence event with a new last_seen).  It stays put now.

-- owner and admin add members; an admin adds members and moderators
CREATE OR REPLACE FUNCTION chat.api_member_add(p_tenant text, p_user text,
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
    SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}') INTO v_users
      FROM jsonb_array_elements_text(a->'user_ids') x;

    -- the users before the conversation, as every writer does
    PERFORM chat.touch_users(p_tenant, p_user, p_name, v_users);

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

-- who has the message: derived from the positions of the members who
-- were there when it came, no row per message and reader
CREATE OR REPLACE FUNCTION chat.api_receipts(p_tenant text, p_user text,
                                             p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    e record;
    m chat.messages;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);
    m := chat.message_in((e.c).id, (a->>'message_id')::bigint);

    RETURN NEXT chat.answer(200, (
        SELECT '{"read_by":' || coalesce(json_agg(x.user_id
                       ORDER BY x.user_id)
                       FILTER (WHERE x.last_read_seq >= m.seq), '[]')
               || ',"delivered_to":' || coalesce(json_agg(x.user_id
                       ORDER BY x.user_id)
                       FILTER (WHERE greatest(x.last_read_seq,
                                              x.last_delivered_seq)
                                     >= m.seq), '[]') || '}'
          FROM chat.members x
         WHERE x.conversation_id = (e.c).id AND x.user_id <> m.sender_id
           AND x.joined_seq < m.seq));
END
$$;

-- A host saw the user come or go everywhere.  Others learn it when the
-- host says to announce it and what they see changes (an invisible or
-- offline user comes and goes unseen).  last_seen moves each time, but for
-- a user who chose invisible or offline: it would tell on it.
CREATE OR REPLACE FUNCTION chat.api_presence_changed(p_tenant text,
                                                     p_user text,
                                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_online boolean := chat.online(a, p_user);
    v_before text;
BEGIN
    PERFORM chat.commit_lazily();
    PERFORM chat.touch_user(p_tenant, p_user, p_name);

    v_before := chat.presence_json(p_tenant, p_user, NOT v_online, false);

    INSERT INTO chat.presence AS p (tenant_id, user_id, last_seen)
    VALUES (p_tenant, p_user, now())
    ON CONFLICT (tenant_id, user_id) DO UPDATE
       SET last_seen = CASE WHEN p.status IN ('invisible', 'offline')
                            THEN p.last_seen
                            ELSE now() END;

    RETURN NEXT chat.answer(204, NULL);

    IF (a->>'announce')::boolean
       AND chat.presence_json(p_tenant, p_user, v_online, false)
           IS DISTINCT FROM v_before
    THEN
        RETURN QUERY SELECT * FROM chat.presence_events(p_tenant, p_user,
                                                        v_online);
    END IF;
END
$$;
