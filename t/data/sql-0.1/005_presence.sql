-- ngx_chat: presence and typing.
--
-- Who is connected is not stored here: each host counts its connections in
-- shared memory and mirrors them into Redis (src/ngx_chat_presence.c), and
-- passes what it learnt to these functions as args.online.  What a user
-- chose (away, busy, invisible, a custom status) is stored here, as it
-- must outlive connections, workers and Redis.  Typing is never stored.

CREATE TABLE chat.presence (
    tenant_id      text NOT NULL,
    user_id        text NOT NULL,
    status         text NOT NULL DEFAULT 'online'
                   CHECK (status IN ('online', 'away', 'busy', 'offline',
                                     'invisible')),
    custom_status  text CHECK (char_length(custom_status) <= 140),
    status_emoji   text CHECK (char_length(status_emoji) <= 16),
    last_seen      timestamptz,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES chat.users
);

-- What others see: offline and nothing more without a connection, offline
-- too for an invisible user; the user sees what it chose.
CREATE FUNCTION chat.presence_json(p_tenant text, p_user text,
                                   p_online boolean, p_self boolean)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT row_to_json(x)::text FROM (
        SELECT p_user AS user_id,
               CASE WHEN p_self THEN coalesce(p.status, 'online')
                    WHEN NOT p_online
                         OR p.status IN ('invisible', 'offline')
                    THEN 'offline'
                    ELSE coalesce(p.status, 'online') END AS status,
               CASE WHEN p_self OR (p_online AND coalesce(p.status, 'online')
                                    NOT IN ('invisible', 'offline'))
                    THEN p.custom_status END AS custom_status,
               CASE WHEN p_self OR (p_online AND coalesce(p.status, 'online')
                                    NOT IN ('invisible', 'offline'))
                    THEN p.status_emoji END AS status_emoji,
               chat.ts(p.last_seen) AS last_seen
          FROM (SELECT 1) one
          LEFT JOIN chat.presence p
                 ON p.tenant_id = p_tenant AND p.user_id = p_user
    ) x
$$;

-- The presence event, to everyone who shares a conversation with the user
-- (at most 5000 of them: presence in bigger crowds is left to polling).
CREATE FUNCTION chat.presence_events(p_tenant text, p_user text,
                                     p_online boolean)
RETURNS SETOF chat.reply LANGUAGE sql STABLE AS $$
    SELECT (chat.notify(p_tenant, x.user_id, 'event',
                        '{"type":"presence",'
                        || substr(chat.presence_json(p_tenant, p_user,
                                                     p_online, false), 2)
                       )).*
      FROM (SELECT DISTINCT o.user_id
              FROM chat.members m
              JOIN chat.members o ON o.conversation_id = m.conversation_id
             WHERE m.tenant_id = p_tenant AND m.user_id = p_user
               AND o.user_id <> p_user
             LIMIT 5000) x
$$;

CREATE FUNCTION chat.online(a jsonb, p_user text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(a->'online', '[]') ? p_user
$$;

-- GET presence?user_ids=: any user of the tenant, the caller too, as
-- others see them (PUT presence/me answers with what the user chose)
CREATE FUNCTION chat.api_presence_get(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN NEXT chat.answer(200, (
        SELECT '[' || coalesce(string_agg(
                   chat.presence_json(p_tenant, u, chat.online(a, u), false),
                   ',' ORDER BY n), '')
               || ']'
          FROM jsonb_array_elements_text(a->'user_ids')
               WITH ORDINALITY AS t(u, n)));
END
$$;

-- PUT presence/me: kept while the user has no connection
CREATE FUNCTION chat.api_presence_set(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_online boolean := chat.online(a, p_user);
    v_before text;
    v_after  text;
BEGIN
    IF NOT (a ?| ARRAY['status', 'custom_status', 'status_emoji']) THEN
        PERFORM chat.fail(400, '"body": names nothing to change');
    END IF;

    PERFORM chat.touch_user(p_tenant, p_user, p_name);

    v_before := chat.presence_json(p_tenant, p_user, v_online, false);

    INSERT INTO chat.presence AS p (tenant_id, user_id, status,
                                    custom_status, status_emoji)
    VALUES (p_tenant, p_user, coalesce(a->>'status', 'online'),
            a->>'custom_status', a->>'status_emoji')
    ON CONFLICT (tenant_id, user_id) DO UPDATE
       SET status = coalesce(a->>'status', p.status),
           custom_status = CASE WHEN a ? 'custom_status'
                                THEN a->>'custom_status'
                                ELSE p.custom_status END,
           status_emoji = CASE WHEN a ? 'status_emoji'
                               THEN a->>'status_emoji'
                               ELSE p.status_emoji END;

    v_after := chat.presence_json(p_tenant, p_user, v_online, false);

    RETURN NEXT chat.answer(200, chat.presence_json(p_tenant, p_user,
                                                    v_online, true));

    IF v_after IS DISTINCT FROM v_before THEN
        RETURN QUERY SELECT * FROM chat.presence_events(p_tenant, p_user,
                                                        v_online);
    END IF;
END
$$;

-- A host saw the user come or go everywhere.  Others learn it when the
-- host says to announce it and what they see changes (an invisible user
-- comes and goes unseen).  last_seen moves each time, but for an invisible
-- user: it would tell on it.
CREATE FUNCTION chat.api_presence_changed(p_tenant text, p_user text,
                                          p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_online boolean := chat.online(a, p_user);
    v_before text;
BEGIN
    PERFORM chat.touch_user(p_tenant, p_user, p_name);

    v_before := chat.presence_json(p_tenant, p_user, NOT v_online, false);

    INSERT INTO chat.presence AS p (tenant_id, user_id, last_seen)
    VALUES (p_tenant, p_user, now())
    ON CONFLICT (tenant_id, user_id) DO UPDATE
       SET last_seen = CASE WHEN p.status = 'invisible' THEN p.last_seen
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
