-- ngx_chat: what a crash may lose without harm commits without waiting
-- for the disk.
--
-- Each connect and disconnect of a user writes its last_seen, and
-- connections report how far they got every few seconds: on a mass
-- reconnect (a restart of nginx) each was a durable commit, a WAL flush
-- apiece, and Postgres took 2.5 times as long for them.  Neither is
-- something a client was told is kept: a crash of Postgres loses at most
-- the last fraction of a second of them, the next connect or report writes
-- them again, and messages and every other change still commit durably.

-- the rest of the transaction commits asynchronously
CREATE FUNCTION chat.commit_lazily() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
END
$$;

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

CREATE OR REPLACE FUNCTION chat.delivered(p_tenants text[],
                                          p_users text[], p_ids bigint[],
                                          p_seqs bigint[])
RETURNS void LANGUAGE sql AS $$
    SELECT chat.commit_lazily();
    UPDATE chat.members m
       SET last_delivered_seq = d.seq
      FROM unnest(p_tenants, p_users, p_ids, p_seqs)
           AS d(tenant_id, user_id, conversation_id, seq)
     WHERE m.conversation_id = d.conversation_id
       AND m.user_id = d.user_id AND m.tenant_id = d.tenant_id
       AND m.last_delivered_seq < d.seq
$$;
