-- ngx_chat: what co-members were last told of a user's presence is kept,
-- and an archive for everyone archives the conversation for each member.
--
-- Presence events were decided twice over: a status chosen while connected
-- was announced by api_presence_set from the live state, but the host's
-- debounced announcement of the connection itself was decided from the
-- zone's own memory of what it had said.  A user who connected, chose
-- "busy" and left before the connection was announced had "busy" told by
-- the first and nothing by the second (it had never said "online"), so
-- co-members saw "busy" for ever.  Now both compare what others would see
-- with what they were last told (chat.presence.shown), and tell them only
-- the difference: one place computes the transition.

ALTER TABLE chat.presence ADD COLUMN shown text;

COMMENT ON COLUMN chat.presence.shown IS
    'status, custom status and emoji as co-members were last told them '
    '(NULL: offline, as nobody was told anything)';

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

-- PUT presence/me: kept while the user has no connection
CREATE OR REPLACE FUNCTION chat.api_presence_set(p_tenant text, p_user text,
                                                 p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_online boolean := chat.online(a, p_user);
BEGIN
    IF NOT (a ?| ARRAY['status', 'custom_status', 'status_emoji']) THEN
        PERFORM chat.fail(400, '"body": names nothing to change');
    END IF;

    PERFORM chat.touch_user(p_tenant, p_user, p_name);

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

    RETURN NEXT chat.answer(200, chat.presence_json(p_tenant, p_user,
                                                    v_online, true));
    RETURN QUERY SELECT * FROM chat.presence_tell(p_tenant, p_user,
                                                  v_online);
END
$$;

-- A host saw the user come or go everywhere (args.online says which).
-- last_seen moves each time, but for a user who chose invisible or
-- offline: it would tell on it.  Whether anyone is told is decided by
-- chat.presence_tell alone; a flapping connection that settles where it
-- was tells nothing.
CREATE OR REPLACE FUNCTION chat.api_presence_changed(p_tenant text,
                                                     p_user text,
                                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_online boolean := chat.online(a, p_user);
BEGIN
    PERFORM chat.commit_lazily();
    PERFORM chat.touch_user(p_tenant, p_user, p_name);

    INSERT INTO chat.presence AS p (tenant_id, user_id, last_seen)
    VALUES (p_tenant, p_user, now())
    ON CONFLICT (tenant_id, user_id) DO UPDATE
       SET last_seen = CASE WHEN p.status IN ('invisible', 'offline')
                            THEN p.last_seen
                            ELSE now() END;

    RETURN NEXT chat.answer(204, NULL);
    RETURN QUERY SELECT * FROM chat.presence_tell(p_tenant, p_user,
                                                  v_online);
END
$$;

-- The owner archives a conversation for everyone: it becomes read-only,
-- and archived for each member (out of the default list); a member may
-- still unarchive it for itself.
CREATE OR REPLACE FUNCTION chat.api_conversation_archive(p_tenant text,
                                                         p_user text,
                                                         p_name text,
                                                         a jsonb)
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

UPDATE chat.members m SET archived = true
  FROM chat.conversations c
 WHERE c.id = m.conversation_id AND c.archived_at IS NOT NULL
   AND NOT m.archived;
