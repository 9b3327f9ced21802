-- ngx_chat: polls (sql/migrations/006_polls.sql).  A poll is sent as a
-- message (chat.api_message_send with type "poll" and poll_* args), voted
-- on by members (chat.api_poll_vote, its retraction), closed by its author
-- or a moderator (chat.api_poll_close).  Each change is an event with seq
-- that carries the poll's counts; who voted what only where it is not
-- anonymous.  chat.poll_json is in 20_json.sql, before the Message's JSON
-- that uses it.

-- A new poll's row, from the args of its message (checked here: the
-- module checks only their types)
CREATE FUNCTION chat.poll_create(p_message bigint, a jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_options text[];
BEGIN
    SELECT coalesce(array_agg(x ORDER BY n), '{}') INTO v_options
      FROM jsonb_array_elements_text(coalesce(a->'poll_options', '[]'))
           WITH ORDINALITY AS t(x, n);

    IF cardinality(v_options) NOT BETWEEN 2 AND 10 THEN
        PERFORM chat.fail(400, '"poll_options": a poll has 2 to 10 options');
    END IF;

    IF (SELECT count(DISTINCT lower(x)) FROM unnest(v_options) x)
       <> cardinality(v_options)
    THEN
        PERFORM chat.fail(400, '"poll_options": each option once');
    END IF;

    IF (a->>'poll_closes_at')::timestamptz <= now() THEN
        PERFORM chat.fail(400, '"poll_closes_at": must be in the future');
    END IF;

    INSERT INTO chat.polls (message_id, options, multiple, anonymous,
                            closes_at)
    VALUES (p_message, v_options,
            coalesce((a->>'poll_multiple')::boolean, false),
            coalesce((a->>'poll_anonymous')::boolean, false),
            (a->>'poll_closes_at')::timestamptz);
END
$$;

-- the poll of a message of this conversation, locked, and open
CREATE FUNCTION chat.poll_open(p_conversation bigint, p_message bigint)
RETURNS chat.polls LANGUAGE plpgsql AS $$
DECLARE
    m chat.messages;
    p chat.polls;
BEGIN
    m := chat.message_in(p_conversation, p_message);
    PERFORM chat.require_not_deleted(m);

    SELECT * INTO p FROM chat.polls WHERE message_id = m.id FOR UPDATE;

    IF NOT FOUND THEN
        PERFORM chat.fail(400, '"message_id": the message is not a poll');
    END IF;

    IF p.closed_at IS NOT NULL OR p.closes_at <= now() THEN
        PERFORM chat.fail(409, 'the poll is closed');
    END IF;

    RETURN p;
END
$$;

-- the event of a change of the poll: its counts for every member; who
-- voted, where the poll is not anonymous
CREATE FUNCTION chat.poll_event(p_conversation bigint, p chat.polls,
                                p_type text, p_user text)
RETURNS chat.reply LANGUAGE sql AS $$
    SELECT chat.emit(p_conversation, chat.next_seq(p_conversation), p_type,
                     chat.kv('message_id', to_json(p.message_id)) || ','
                     || chat.kv('user_id', CASE WHEN p.anonymous
                                                THEN 'null'::json
                                                ELSE to_json(p_user) END)
                     || ','
                     || chat.kv('poll', chat.poll_json(p.message_id, NULL)),
                     p.message_id)
$$;

-- POST .../messages/{mid}/votes {choices: [1, 3]}: the caller's choices,
-- replacing those before (one, unless the poll allows several);
-- DELETE .../votes: none
CREATE FUNCTION chat.api_poll_vote(p_tenant text, p_user text,
                                   p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e         record;
    p         chat.polls;
    v_choices smallint[];
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
    e := chat.enter(p_tenant, p_user,
                    chat.conversation_of(p_tenant, p_user, a), true);
    PERFORM chat.require_open(e.c);
    p := chat.poll_open((e.c).id, (a->>'message_id')::bigint);

    SELECT coalesce(array_agg(DISTINCT x::smallint), '{}') INTO v_choices
      FROM jsonb_array_elements_text(coalesce(a->'choices', '[]')) x;

    IF a ? 'choices' THEN
        IF cardinality(v_choices) = 0 THEN
            PERFORM chat.fail(400, '"choices": at least one option');
        END IF;

        IF NOT p.multiple AND cardinality(v_choices) > 1 THEN
            PERFORM chat.fail(400, '"choices": this poll takes one option');
        END IF;

        IF (SELECT max(x) FROM unnest(v_choices) x) > cardinality(p.options)
        THEN
            PERFORM chat.fail(400, '"choices": options are numbered 1 to '
                                   || cardinality(p.options));
        END IF;
    END IF;

    DELETE FROM chat.poll_votes
     WHERE message_id = p.message_id AND user_id = p_user;

    INSERT INTO chat.poll_votes (message_id, user_id, choice)
    SELECT p.message_id, p_user, x FROM unnest(v_choices) x;

    RETURN NEXT chat.answer(200, chat.message_json(
        chat.message_in((e.c).id, p.message_id), p_user)::text);
    RETURN NEXT chat.poll_event((e.c).id, p, 'poll_voted', p_user);
END
$$;

-- POST .../messages/{mid}/close: the author or a moderator ends the poll
CREATE FUNCTION chat.api_poll_close(p_tenant text, p_user text,
                                    p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e record;
    m chat.messages;
    p chat.polls;
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);
    e := chat.enter(p_tenant, p_user,
                    chat.conversation_of(p_tenant, p_user, a), true);
    p := chat.poll_open((e.c).id, (a->>'message_id')::bigint);
    m := chat.message_in((e.c).id, p.message_id);

    IF m.sender_id <> p_user THEN
        PERFORM chat.require_rank(e.m, 'moderator', 'only the author or a '
                                  'moderator may close the poll');
    END IF;

    UPDATE chat.polls SET closed_at = now()
     WHERE message_id = p.message_id
    RETURNING * INTO p;

    RETURN NEXT chat.answer(200, chat.message_json(m, p_user)::text);
    RETURN NEXT chat.poll_event((e.c).id, p, 'poll_closed', p_user);
END
$$;
