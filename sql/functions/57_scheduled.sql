-- ngx_chat: scheduled messages and templates (sql/migrations/
-- 010_scheduled.sql).

CREATE FUNCTION chat.scheduled_json(s chat.scheduled_messages) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', s.id, 'conversation_id', s.conversation_id,
        'send_at', chat.ts(s.send_at), 'content', s.args->>'content',
        'type', coalesce(s.args->>'type', 'text'),
        'reply_to', (s.args->>'reply_to')::bigint,
        'mentions', coalesce(s.args->'mentions', '[]'),
        'created_at', chat.ts(s.created_at))
$$;

-- POST conversations/{id}/scheduled: kept until send_at, within a year;
-- a user keeps at most 100
CREATE FUNCTION chat.api_scheduled_create(p_tenant text, p_user text,
                                          p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e       record;
    s       chat.scheduled_messages;
    v_at    timestamptz := (a->>'send_at')::timestamptz;
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, false);
    PERFORM chat.require_poster(e.c, e.m);

    IF coalesce(a->>'type', 'text') NOT IN ('text', 'emoji', 'location') THEN
        PERFORM chat.fail(400, '"type": a scheduled message is text, emoji '
                               'or location');
    END IF;
    IF v_at <= now() OR v_at > now() + interval '1 year' THEN
        PERFORM chat.fail(400, '"send_at": must be ahead, within a year');
    END IF;
    IF (SELECT count(*) FROM chat.scheduled_messages
         WHERE tenant_id = p_tenant AND user_id = p_user) >= 100
    THEN
        PERFORM chat.fail_limit('you have 100 scheduled messages, as many '
                                'as one may');
    END IF;

    INSERT INTO chat.scheduled_messages (tenant_id, user_id,
                                         conversation_id, send_at, args)
    VALUES (p_tenant, p_user, (e.c).id, v_at,
            a - 'send_at' - 'conversation_id' - '$claims')
    RETURNING * INTO s;

    RETURN NEXT chat.answer(201, chat.scheduled_json(s)::text);
END
$$;

-- GET scheduled: mine, the soonest first
CREATE FUNCTION chat.api_scheduled_list(p_tenant text, p_user text,
                                        p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN NEXT chat.answer(200, json_build_object('items',
        coalesce((SELECT json_agg(chat.scheduled_json(s)
                                  ORDER BY s.send_at, s.id)
                    FROM chat.scheduled_messages s
                   WHERE s.tenant_id = p_tenant AND s.user_id = p_user),
                 '[]'))::text);
END
$$;

-- DELETE scheduled/{id}: it will not go; 404 when it is not yours or went
CREATE FUNCTION chat.api_scheduled_cancel(p_tenant text, p_user text,
                                          p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM chat.scheduled_messages
     WHERE id = (a->>'scheduled_id')::bigint
       AND tenant_id = p_tenant AND user_id = p_user;
    IF NOT FOUND THEN
        PERFORM chat.fail(404, 'no such scheduled message');
    END IF;
    RETURN NEXT chat.answer(204, NULL);
END
$$;

-- What is due, posted as its user would (the workers' tick, for any
-- tenant: p_tenant and p_user are not used).  Each is sent on its own:
-- one that can no longer be (its user left, the conversation archived) is
-- dropped, with a warning.  Returns the events to publish and a count.
CREATE FUNCTION chat.api_scheduled_due(p_tenant text, p_user text,
                                       p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    s       chat.scheduled_messages;
    r       chat.reply;
    v_sent  integer := 0;
BEGIN
    FOR s IN
        SELECT * FROM chat.scheduled_messages x
         WHERE x.send_at <= now()
         ORDER BY x.send_at, x.id
         LIMIT coalesce((a->>'limit')::integer, 50)
           FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            FOR r IN
                SELECT * FROM chat.api_message_send(
                    s.tenant_id, s.user_id, NULL,
                    s.args || jsonb_build_object(
                        'conversation_id', s.conversation_id,
                        'client_id', 'sch_' || s.id))
            LOOP
                IF r.status IS NULL THEN
                    RETURN NEXT r;
                END IF;
            END LOOP;
            v_sent := v_sent + 1;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'scheduled message % of % is dropped: %', s.id,
                          s.user_id, SQLERRM;
        END;

        DELETE FROM chat.scheduled_messages WHERE id = s.id;
    END LOOP;

    RETURN NEXT chat.answer(200, json_build_object('sent', v_sent)::text);
END
$$;

-- templates: a user's saved replies, by name

CREATE FUNCTION chat.template_json(t chat.templates) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', t.id, 'name', t.name,
                             'content', t.content,
                             'created_at', chat.ts(t.created_at),
                             'updated_at', chat.ts(t.updated_at))
$$;

-- POST templates {name, content}: 201, or 200 replacing the text of the
-- name; at most 200 a user
CREATE FUNCTION chat.api_template_save(p_tenant text, p_user text,
                                       p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    t     chat.templates;
    v_new boolean;
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);

    IF btrim(a->>'name') = '' THEN
        PERFORM chat.fail(400, '"name": is required');
    END IF;

    INSERT INTO chat.templates (tenant_id, user_id, name, content)
    VALUES (p_tenant, p_user, a->>'name', a->>'content')
    ON CONFLICT (tenant_id, user_id, name) DO UPDATE
       SET content = excluded.content, updated_at = now()
    RETURNING * INTO t;

    -- made now, or an older one whose text is replaced
    v_new := t.created_at = t.updated_at;

    IF v_new AND (SELECT count(*) FROM chat.templates
                   WHERE tenant_id = p_tenant AND user_id = p_user) > 200
    THEN
        PERFORM chat.fail_limit('you have 200 templates, as many as one '
                                'may');
    END IF;

    RETURN NEXT chat.answer(CASE WHEN v_new THEN 201 ELSE 200 END,
                            chat.template_json(t)::text);
END
$$;

CREATE FUNCTION chat.api_template_list(p_tenant text, p_user text,
                                       p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN NEXT chat.answer(200, json_build_object('items',
        coalesce((SELECT json_agg(chat.template_json(t) ORDER BY t.name)
                    FROM chat.templates t
                   WHERE t.tenant_id = p_tenant AND t.user_id = p_user),
                 '[]'))::text);
END
$$;

CREATE FUNCTION chat.api_template_delete(p_tenant text, p_user text,
                                         p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM chat.templates
     WHERE id = (a->>'template_id')::bigint
       AND tenant_id = p_tenant AND user_id = p_user;
    IF NOT FOUND THEN
        PERFORM chat.fail(404, 'no such template');
    END IF;
    RETURN NEXT chat.answer(204, NULL);
END
$$;
