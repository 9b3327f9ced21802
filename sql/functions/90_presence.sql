-- ngx_chat: presence and typing.
--
-- Who is connected is not stored here: each host counts its connections in
-- shared memory and mirrors them into Redis (src/ngx_chat_presence.c), and
-- passes what it learnt to these functions as args.online.  What a user
-- chose (away, busy, invisible, a custom status) is stored in
-- chat.presence, as it must outlive connections, workers and Redis.
-- Typing is never stored.
--
-- Whether co-members are told is decided in one place, presence_tell, for
-- a connection's coming and going (api_presence_changed) and a status
-- chosen with PUT presence/me (api_presence_set) alike: it compares what
-- others would see now with what they were last told (chat.presence.shown)
-- and tells them only a difference.  So a user who connected, chose "busy"
-- and left before the connection was announced ends offline for others.

-- What others see: offline and nothing more without a connection, offline
-- too for a user who chose invisible or offline; the user sees what it
-- chose.
CREATE FUNCTION chat.presence_json(p_tenant text, p_user text,
                                   p_online boolean, p_self boolean)
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

-- The presence event, once, on the user's own presence channel: those who
-- watch the user (the other member of a direct conversation, the members
-- of a conversation they have open, those who named the user in
-- presence_subscribe) hear it; nobody else is sent anything, however big
-- the user's conversations are.
CREATE FUNCTION chat.presence_events(p_tenant text, p_user text,
                                     p_online boolean)
RETURNS SETOF chat.reply LANGUAGE sql STABLE AS $$
    SELECT NULL::integer, chat.presence_channel(p_tenant, p_user),
           '0' || E'\n' || '{"type":"presence",'
           || substr(chat.presence_json(p_tenant, p_user, p_online, false), 2)
$$;

CREATE FUNCTION chat.online(a jsonb, p_user text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(a->'online', '[]') ? p_user
$$;

-- what others see of the user, without last_seen: the part that changes
CREATE FUNCTION chat.presence_visible(p_tenant text, p_user text,
                                      p_online boolean)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT (p.x->>'status') || ' ' || coalesce(p.x->>'custom_status', '')
           || ' ' || coalesce(p.x->>'status_emoji', '')
      FROM (SELECT chat.presence_json(p_tenant, p_user, p_online,
                                      false)::jsonb AS x) p
$$;

-- co-members are told when what they see differs from what they were told
CREATE FUNCTION chat.presence_tell(p_tenant text, p_user text,
                                   p_online boolean)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_now  text := chat.presence_visible(p_tenant, p_user, p_online);
    v_told text;
BEGIN
    SELECT coalesce(shown, 'offline  ') INTO v_told FROM chat.presence
     WHERE tenant_id = p_tenant AND user_id = p_user
       FOR UPDATE;

    v_told := coalesce(v_told, 'offline  ');

    IF v_now IS NOT DISTINCT FROM v_told THEN
        RETURN;
    END IF;

    UPDATE chat.presence SET shown = v_now
     WHERE tenant_id = p_tenant AND user_id = p_user;

    RETURN QUERY SELECT * FROM chat.presence_events(p_tenant, p_user,
                                                    p_online);
END
$$;

-- GET presence?user_ids=: any user of the tenant, the caller too, as
-- others see them (PUT presence/me answers with what the user chose)
CREATE FUNCTION chat.api_presence_get(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN NEXT chat.answer(200, (
        SELECT '[' || coalesce(string_agg(
                   chat.presence_detail(p_tenant, u, chat.online(a, u),
                                        p_user),
                   ',' ORDER BY n), '')
               || ']'
          FROM jsonb_array_elements_text(a->'user_ids')
               WITH ORDINALITY AS t(u, n)));
END
$$;

-- What GET presence adds to the Presence, for the one who asks: since
-- when the user is away, how long it has been online today (UTC), and the
-- conversation it looks at when the asker is a member of it; all null
-- where it is seen offline
CREATE FUNCTION chat.presence_detail(p_tenant text, p_user text,
                                     p_online boolean, p_viewer text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    p       chat.presence;
    v_json  jsonb := chat.presence_json(p_tenant, p_user, p_online,
                                        false)::jsonb;
    v_shown boolean;
    v_today integer;
BEGIN
    SELECT * INTO p FROM chat.presence
     WHERE tenant_id = p_tenant AND user_id = p_user;

    -- as others see it, the caller too (as GET presence answers)
    v_shown := v_json->>'status' <> 'offline';

    SELECT coalesce(sum(d.seconds), 0) INTO v_today FROM chat.presence_days d
     WHERE d.tenant_id = p_tenant AND d.user_id = p_user
       AND d.day = (now() AT TIME ZONE 'UTC')::date;

    IF p_online AND p.online_since IS NOT NULL THEN
        v_today := least(86400, v_today + extract(epoch FROM now()
            - greatest(p.online_since,
                       date_trunc('day', now() AT TIME ZONE 'UTC')
                       AT TIME ZONE 'UTC'))::integer);
    END IF;

    RETURN (v_json || jsonb_build_object(
        'away_since', CASE WHEN v_shown AND v_json->>'status' = 'away'
                           THEN chat.ts(p.away_since) END,
        'online_today', CASE WHEN v_shown THEN v_today END,
        'viewing', CASE WHEN v_shown AND p_online
                             AND EXISTS (SELECT 1 FROM chat.members m
                                          WHERE m.conversation_id = p.viewing
                                            AND m.user_id = p_viewer)
                        THEN p.viewing END))::text;
END
$$;

-- the time of a stretch online, added to the days (UTC) it spans
CREATE FUNCTION chat.presence_add_time(p_tenant text, p_user text,
                                       p_from timestamptz, p_to timestamptz)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO chat.presence_days AS d (tenant_id, user_id, day, seconds)
    SELECT p_tenant, p_user, x.day,
           least(86400, extract(epoch FROM
               least(p_to, (x.day + 1)::timestamp AT TIME ZONE 'UTC')
               - greatest(p_from, x.day::timestamp AT TIME ZONE 'UTC'))
               ::integer)
      FROM (SELECT generate_series((p_from AT TIME ZONE 'UTC')::date,
                                   (p_to AT TIME ZONE 'UTC')::date,
                                   interval '1 day')::date AS day) x
    ON CONFLICT (tenant_id, user_id, day) DO UPDATE
       SET seconds = least(86400, d.seconds + excluded.seconds)
$$;

-- GET presence/days?days=N: how long I was online each of the last N days
CREATE FUNCTION chat.api_presence_days(p_tenant text, p_user text,
                                       p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF coalesce((a->>'days')::integer, 7) NOT BETWEEN 1 AND 90 THEN
        PERFORM chat.fail(400, '"days": from 1 to 90');
    END IF;

    RETURN NEXT chat.answer(200, json_build_object('items', coalesce((
        SELECT json_agg(json_build_object('day', d.day,
                                          'seconds', d.seconds)
                        ORDER BY d.day DESC)
          FROM chat.presence_days d
         WHERE d.tenant_id = p_tenant AND d.user_id = p_user
           AND d.day > (now() AT TIME ZONE 'UTC')::date
                       - coalesce((a->>'days')::integer, 7)), '[]'))::text);
END
$$;

-- PUT presence/me: kept while the user has no connection
CREATE FUNCTION chat.api_presence_set(p_tenant text, p_user text, p_name text,
                                      a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_online boolean := chat.online(a, p_user);
BEGIN
    IF NOT (a ?| ARRAY['status', 'custom_status', 'status_emoji']) THEN
        PERFORM chat.fail(400, '"body": names nothing to change');
    END IF;

    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);

    INSERT INTO chat.presence AS p (tenant_id, user_id, status,
                                    custom_status, status_emoji,
                                    away_since)
    VALUES (p_tenant, p_user, coalesce(a->>'status', 'online'),
            a->>'custom_status', a->>'status_emoji',
            CASE WHEN a->>'status' = 'away' THEN now() END)
    ON CONFLICT (tenant_id, user_id) DO UPDATE
       SET away_since = CASE WHEN coalesce(a->>'status', p.status) <> 'away'
                             THEN NULL
                             WHEN p.status = 'away' THEN p.away_since
                             ELSE now() END,
           status = coalesce(a->>'status', p.status),
           custom_status = CASE WHEN a ? 'custom_status'
                                THEN a->>'custom_status'
                                ELSE p.custom_status END,
           status_emoji = CASE WHEN a ? 'status_emoji'
                               THEN a->>'status_emoji'
                               ELSE p.status_emoji END;

    RETURN NEXT chat.answer(200, chat.presence_json(p_tenant, p_user,
                                                    v_online, true));
    RETURN QUERY SELECT * FROM chat.presence_tell(p_tenant, p_user,
                                                  v_online);
END
$$;

-- A host saw the user come or go everywhere (args.online says which).
-- last_seen moves each time (committed lazily: chat.commit_lazily), but
-- for a user who chose invisible or offline: it would tell on it.  Whether anyone is told is decided by
-- chat.presence_tell alone; a flapping connection that settles where it
-- was tells nothing.
CREATE FUNCTION chat.api_presence_changed(p_tenant text, p_user text,
                                          p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_online boolean := chat.online(a, p_user);
    v_since  timestamptz;
BEGIN
    PERFORM chat.commit_lazily();
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);

    SELECT online_since INTO v_since FROM chat.presence
     WHERE tenant_id = p_tenant AND user_id = p_user
       FOR UPDATE;

    -- online since the first connection; offline: the time goes to its
    -- days, and nothing is looked at any more
    INSERT INTO chat.presence AS p (tenant_id, user_id, last_seen,
                                    online_since)
    VALUES (p_tenant, p_user, now(), CASE WHEN v_online THEN now() END)
    ON CONFLICT (tenant_id, user_id) DO UPDATE
       SET last_seen = CASE WHEN p.status IN ('invisible', 'offline')
                            THEN p.last_seen
                            ELSE now() END,
           online_since = CASE WHEN v_online
                               THEN coalesce(p.online_since, now()) END,
           viewing = CASE WHEN v_online THEN p.viewing END;

    IF NOT v_online AND v_since IS NOT NULL THEN
        PERFORM chat.presence_add_time(p_tenant, p_user, v_since, now());
    END IF;

    RETURN NEXT chat.answer(204, NULL);
    RETURN QUERY SELECT * FROM chat.presence_tell(p_tenant, p_user,
                                                  v_online);
END
$$;

-- POST conversations/{id}/typing: only a member types; the module sends
-- the signal and ends it by itself
CREATE FUNCTION chat.api_typing(p_tenant text, p_user text, p_name text,
                                a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    e record;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);
    RETURN NEXT chat.answer(204, NULL);
END
$$;

-- join (and leave) over a WebSocket: the conversation must be the
-- caller's; the answer names its other members while they are at most
-- args.max (the module watches their presence while the conversation is
-- open), or nobody in a bigger one, and for leave
CREATE FUNCTION chat.api_view(p_tenant text, p_user text, p_name text,
                              a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);

    -- what the user looks at, for co-members who ask (GET presence)
    PERFORM chat.commit_lazily();
    IF a ? 'max' THEN
        INSERT INTO chat.presence AS p (tenant_id, user_id, viewing)
        VALUES (p_tenant, p_user, (e.c).id)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET viewing = (e.c).id;
    ELSE
        UPDATE chat.presence SET viewing = NULL
         WHERE tenant_id = p_tenant AND user_id = p_user
           AND viewing = (e.c).id;
    END IF;

    IF NOT a ? 'max' OR (e.c).member_count > (a->>'max')::integer THEN
        RETURN NEXT chat.answer(200, '[]');
        RETURN;
    END IF;

    RETURN NEXT chat.answer(200, (
        SELECT coalesce(json_agg(m.user_id ORDER BY m.user_id), '[]')::text
          FROM chat.members m
         WHERE m.conversation_id = (e.c).id AND m.user_id <> p_user));
END
$$;
