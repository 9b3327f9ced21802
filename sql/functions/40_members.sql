-- ngx_chat: members and their roles (owner, admin, moderator, member).
--
-- A member change is an event of the conversation's stream; the user it
-- concerns is its subject, where that user's connections start or stop
-- following the conversation.

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

-- Owner and admin add members; an admin adds members and moderators.
-- The users are written before the conversation is locked, as every
-- writer does (chat.enter); a refusal rolls them back with the rest.
CREATE FUNCTION chat.api_member_add(p_tenant text, p_user text, p_name text,
                                    a jsonb)
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
    PERFORM chat.policy_check(p_tenant, p_user,
                              ARRAY(SELECT u FROM unnest(v_users) u
                                     WHERE u <> p_user), a);

    IF (e.c).type = 'bot' THEN
        PERFORM chat.fail(403, 'a bot conversation keeps its two members');
    END IF;

    IF (e.c).max_members IS NOT NULL
       AND (e.c).member_count
           + (SELECT count(*) FROM unnest(v_users) u
               WHERE NOT EXISTS (SELECT 1 FROM chat.members
                                  WHERE conversation_id = (e.c).id
                                    AND user_id = u))
           > (e.c).max_members
    THEN
        PERFORM chat.fail_limit('"user_ids": this conversation has at most '
                                || (e.c).max_members
                                || ' members (its max_members)');
    END IF;

    IF chat.rank(v_role) >= chat.rank((e.m).role) THEN
        PERFORM chat.fail(403, '"role": you may only give roles below '
                               'your own');
    END IF;

    IF (e.c).member_count
       + (SELECT count(*) FROM unnest(v_users) u
           WHERE NOT EXISTS (SELECT 1 FROM chat.members
                              WHERE conversation_id = (e.c).id
                                AND user_id = u))
       > chat.max_of('members', 10000)
    THEN
        PERFORM chat.fail_limit('"user_ids": a conversation has at most '
                                || chat.max_of('members', 10000)
                                || ' members (chat_max members)');
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
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
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
