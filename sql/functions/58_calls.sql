-- ngx_chat: calls (sql/migrations/011_calls.sql).  The WebSocket's
-- call_invite, call_accept, call_decline, call_end and call_signal call
-- the api_call_ functions; each change is told to the members'
-- connections through their user channels ("event"), a signal only to the
-- one it is for.  A call that rings unanswered for 30 s is missed
-- (chat.api_calls_expire, run by the workers' tick).

CREATE FUNCTION chat.call_json(k chat.calls) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', k.id, 'conversation_id', k.conversation_id,
        'caller_id', k.caller_id, 'video', k.video, 'screen', k.screen,
        'state', k.state, 'participants', to_json(k.participants),
        'created_at', chat.ts(k.created_at),
        'answered_at', chat.ts(k.answered_at),
        'ended_at', chat.ts(k.ended_at), 'outcome', k.outcome)
$$;

-- the event to every member's connections, its text made once
CREATE FUNCTION chat.call_tell(k chat.calls, p_type text, p_extra text)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_event text := '{"type":' || to_json(p_type) || ',"call":'
                    || chat.call_json(k) || coalesce(p_extra, '') || '}';
BEGIN
    RETURN QUERY
        SELECT (chat.notify(m.tenant_id, m.user_id, 'event', v_event)).*
          FROM chat.members m
         WHERE m.conversation_id = k.conversation_id;
END
$$;

-- the call, for a member of its conversation, locked
CREATE FUNCTION chat.call_of(p_tenant text, p_user text, a jsonb)
RETURNS chat.calls LANGUAGE plpgsql AS $$
DECLARE
    k chat.calls;
BEGIN
    SELECT * INTO k FROM chat.calls
     WHERE id = (a->>'call_id')::bigint AND tenant_id = p_tenant
       FOR UPDATE;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM chat.members
                                 WHERE conversation_id = k.conversation_id
                                   AND user_id = p_user)
    THEN
        PERFORM chat.fail(404, 'call not found');
    END IF;
    RETURN k;
END
$$;

-- whether the user is in a call under way but p_except: calling, in it,
-- or rung by it in a direct conversation
CREATE FUNCTION chat.in_call(p_tenant text, p_user text, p_except bigint)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM chat.calls k
          JOIN chat.conversations c ON c.id = k.conversation_id
         WHERE k.tenant_id = p_tenant AND k.state <> 'ended'
           AND k.id IS DISTINCT FROM p_except
           AND (k.caller_id = p_user OR p_user = ANY (k.participants)
                OR (k.state = 'ringing' AND c.type IN ('direct', 'bot')
                    AND EXISTS (SELECT 1 FROM chat.members m
                                 WHERE m.conversation_id = c.id
                                   AND m.user_id = p_user))))
$$;

-- The end of a call: its outcome, and the "call" message of it, by the
-- caller, with a seq as any message
CREATE FUNCTION chat.call_finish(k chat.calls, p_outcome text)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    c     chat.conversations;
    r     record;
    v_sec integer;
BEGIN
    UPDATE chat.calls
       SET state = 'ended', outcome = p_outcome, ended_at = now()
     WHERE id = k.id
    RETURNING * INTO k;

    v_sec := coalesce(extract(epoch FROM k.ended_at - k.answered_at),
                      0)::integer;

    SELECT * INTO c FROM chat.conversations WHERE id = k.conversation_id
       FOR UPDATE;

    SELECT * INTO r FROM chat.post_message(
        c, k.caller_id, 'call',
        json_build_object('call_id', k.id, 'outcome', p_outcome,
                          'duration', v_sec, 'video', k.video)::text,
        NULL, '{}', '{}', NULL, NULL, NULL);

    RETURN QUERY SELECT * FROM unnest(r.events);
    RETURN QUERY SELECT * FROM chat.call_tell(k, 'call_ended', NULL);
END
$$;

-- call_invite {conversation_id, video?, screen?}
CREATE FUNCTION chat.api_call_invite(p_tenant text, p_user text,
                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e      record;
    k      chat.calls;
    v_peer text;
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint, true);
    PERFORM chat.require_poster(e.c, e.m);

    IF chat.in_call(p_tenant, p_user, NULL) THEN
        PERFORM chat.fail(409, 'you are in another call');
    END IF;
    IF EXISTS (SELECT 1 FROM chat.calls
                WHERE conversation_id = (e.c).id AND state <> 'ended') THEN
        PERFORM chat.fail(409, 'a call of this conversation is under way');
    END IF;

    INSERT INTO chat.calls (tenant_id, conversation_id, caller_id, video,
                            screen)
    VALUES (p_tenant, (e.c).id, p_user,
            coalesce((a->>'video')::boolean, false),
            coalesce((a->>'screen')::boolean, false))
    RETURNING * INTO k;

    -- the other of a direct conversation in another call: busy at once
    SELECT m.user_id INTO v_peer FROM chat.members m
     WHERE m.conversation_id = (e.c).id AND m.user_id <> p_user
       AND (e.c).type IN ('direct', 'bot');
    IF v_peer IS NOT NULL AND chat.in_call(p_tenant, v_peer, k.id) THEN
        RETURN QUERY SELECT * FROM chat.call_finish(k, 'busy');
        SELECT * INTO k FROM chat.calls WHERE id = k.id;
        RETURN NEXT chat.answer(201, chat.call_json(k)::text);
        RETURN;
    END IF;

    RETURN NEXT chat.answer(201, chat.call_json(k)::text);
    RETURN QUERY SELECT * FROM chat.call_tell(k, 'call_invite', NULL);
END
$$;

-- call_accept {call_id}: the call is answered, the user is in it
CREATE FUNCTION chat.api_call_accept(p_tenant text, p_user text,
                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    k chat.calls := chat.call_of(p_tenant, p_user, a);
BEGIN
    IF k.state = 'ended' THEN
        PERFORM chat.fail(410, 'the call has ended');
    END IF;
    IF k.caller_id = p_user OR p_user = ANY (k.participants) THEN
        PERFORM chat.fail(409, 'you are in this call');
    END IF;
    IF chat.in_call(p_tenant, p_user, k.id) THEN
        PERFORM chat.fail(409, 'you are in another call');
    END IF;

    UPDATE chat.calls
       SET state = 'active', answered_at = coalesce(answered_at, now()),
           participants = participants || p_user
     WHERE id = k.id
    RETURNING * INTO k;

    RETURN NEXT chat.answer(200, chat.call_json(k)::text);
    RETURN QUERY SELECT * FROM chat.call_tell(
        k, 'call_accepted', ',"user_id":' || to_json(p_user));
END
$$;

-- call_decline {call_id}: not answered by this user; a call nobody else
-- may answer (a direct one) is declined
CREATE FUNCTION chat.api_call_decline(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    k chat.calls := chat.call_of(p_tenant, p_user, a);
    c chat.conversations;
BEGIN
    IF k.state <> 'ringing' OR k.caller_id = p_user THEN
        PERFORM chat.fail(409, 'only a ringing call of another is declined');
    END IF;

    SELECT * INTO c FROM chat.conversations WHERE id = k.conversation_id;

    IF c.type IN ('direct', 'bot') THEN
        RETURN QUERY SELECT * FROM chat.call_finish(k, 'declined');
    ELSE
        RETURN QUERY SELECT * FROM chat.call_tell(
            k, 'call_declined', ',"user_id":' || to_json(p_user));
    END IF;

    SELECT * INTO k FROM chat.calls WHERE id = k.id;
    RETURN NEXT chat.answer(200, chat.call_json(k)::text);
END
$$;

-- call_end {call_id}: the caller cancels a ringing call or hangs up; a
-- participant leaves, the last one ends it
CREATE FUNCTION chat.api_call_end(p_tenant text, p_user text,
                                  p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    k chat.calls := chat.call_of(p_tenant, p_user, a);
BEGIN
    IF k.state = 'ended' THEN
        PERFORM chat.fail(410, 'the call has ended');
    END IF;
    IF k.caller_id <> p_user AND NOT p_user = ANY (k.participants) THEN
        PERFORM chat.fail(403, 'you are not in this call');
    END IF;

    IF k.caller_id = p_user OR cardinality(k.participants) <= 1 THEN
        RETURN QUERY SELECT * FROM chat.call_finish(
            k, CASE WHEN k.state = 'ringing' THEN 'cancelled'
                    ELSE 'ended' END);
    ELSE
        UPDATE chat.calls SET participants = array_remove(participants,
                                                           p_user)
         WHERE id = k.id
        RETURNING * INTO k;
        RETURN QUERY SELECT * FROM chat.call_tell(
            k, 'call_left', ',"user_id":' || to_json(p_user));
    END IF;

    SELECT * INTO k FROM chat.calls WHERE id = k.id;
    RETURN NEXT chat.answer(200, chat.call_json(k)::text);
END
$$;

-- call_signal {call_id, to, signal}: an SDP offer or answer, or an ICE
-- candidate, as the client wrote it, to the connections of one peer of
-- the call; never stored
CREATE FUNCTION chat.api_call_signal(p_tenant text, p_user text,
                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    k    chat.calls;
    v_to text := a->>'to';
BEGIN
    SELECT * INTO k FROM chat.calls
     WHERE id = (a->>'call_id')::bigint AND tenant_id = p_tenant;

    IF NOT FOUND OR k.state = 'ended'
       OR NOT (k.caller_id = p_user OR p_user = ANY (k.participants))
    THEN
        PERFORM chat.fail(404, 'no call of yours under way');
    END IF;

    -- to the caller or a participant, or to a member it rings for
    IF v_to = p_user OR NOT EXISTS (
        SELECT 1 FROM chat.members
         WHERE conversation_id = k.conversation_id AND user_id = v_to)
    THEN
        PERFORM chat.fail(400, '"to": must be another member of the call''s '
                               'conversation');
    END IF;

    RETURN NEXT chat.answer(200, NULL);
    RETURN NEXT chat.notify(p_tenant, v_to, 'event',
        json_build_object('type', 'call_signal', 'call_id', k.id,
                          'from', p_user, 'signal', a->>'signal')::text);
END
$$;

-- the workers' tick: a call that rang 30 s unanswered is missed
CREATE FUNCTION chat.api_calls_expire(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    k       chat.calls;
    v_n     integer := 0;
BEGIN
    FOR k IN
        SELECT * FROM chat.calls
         WHERE state = 'ringing' AND created_at < now() - interval '30 s'
         ORDER BY created_at LIMIT 50
           FOR UPDATE SKIP LOCKED
    LOOP
        RETURN QUERY SELECT * FROM chat.call_finish(k, 'missed');
        v_n := v_n + 1;
    END LOOP;

    RETURN NEXT chat.answer(200, json_build_object('missed', v_n)::text);
END
$$;
