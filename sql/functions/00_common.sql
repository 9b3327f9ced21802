-- ngx_chat: the functions every action uses.
--
-- Each action of the API is one function chat.api_<action>(tenant, user,
-- name, args) that the module calls with arguments it has already checked
-- for type and size.  It returns rows of chat.reply: the first is the
-- answer (status, body), the others are events to publish (channel, body).
-- A refusal is raised with SQLSTATE 'CH' || status, which rolls back
-- whatever the function wrote before it.
--
-- sql/functions/ holds every function of schema chat once, as it is now:
-- sql/migrate drops them all and runs these files in name order on every
-- run.  A LANGUAGE sql function's body is checked when it is made, so a
-- file comes after those whose functions it calls that way.


-- answers

CREATE FUNCTION chat.answer(p_status integer, p_body text)
RETURNS chat.reply LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_status, NULL, p_body)::chat.reply
$$;

CREATE FUNCTION chat.fail(p_status integer, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CH' || p_status, MESSAGE = p_message;
END
$$;

-- chat_max: what one request may make, as the module tells each of its
-- connections (chat.max_<name>); the default where it says nothing
CREATE FUNCTION chat.max_of(p_name text, p_default integer) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('chat.max_' || p_name, true),
                           '')::integer, p_default)
$$;

-- a refusal of chat_max: 409 with the code limit_reached
CREATE FUNCTION chat.fail_limit(p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CL409', MESSAGE = p_message;
END
$$;

-- RFC 3339 in UTC with milliseconds
CREATE FUNCTION chat.ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- a JSON member "key":value
CREATE FUNCTION chat.kv(p_key text, p_value json) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_json(p_key) || ':' || coalesce(p_value::text, 'null')
$$;

-- a list answer; p_items is the items joined by commas
CREATE FUNCTION chat.page(p_items text, p_cursor text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"items":[' || coalesce(p_items, '') || ']'
           || ',"next_cursor":' || coalesce(to_json(p_cursor)::text, 'null')
           || '}'
$$;

CREATE FUNCTION chat.limit_of(a jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce((a->>'limit')::integer, 50)
$$;

CREATE FUNCTION chat.rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_role WHEN 'owner' THEN 4 WHEN 'admin' THEN 3
                       WHEN 'moderator' THEN 2 WHEN 'member' THEN 1
                       ELSE 0 END
$$;

-- The rest of the transaction commits without waiting for the disk.  For
-- what a crash may lose without harm: last_seen, written at each connect
-- and disconnect, and the positions connections report.  Neither is
-- something a client was told is kept; a crash of Postgres loses at most
-- the last fraction of a second of them and the next connect or report
-- writes them again.  On a mass reconnect (a restart of nginx) a durable
-- commit apiece, a WAL flush each, made Postgres take 2.5 times as long.
-- Messages and every other change commit durably.
CREATE FUNCTION chat.commit_lazily() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
END
$$;


-- users

-- the tenant and the user behind a token exist once they act
CREATE FUNCTION chat.touch_user(p_tenant text, p_user text, p_name text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- the common case writes nothing: known, and known by this name
    PERFORM 1 FROM chat.users
     WHERE tenant_id = p_tenant AND id = p_user
       AND (p_name IS NULL OR name IS NOT DISTINCT FROM p_name);

    IF NOT FOUND THEN
        PERFORM chat.touch_users(p_tenant, p_user, p_name, '{}');
    END IF;
END
$$;

-- The same for the caller of an action, whose args say "$bot" when its
-- token said "bot": true (the module adds it; a client cannot, unknown
-- fields are refused): the user is a bot as its last token said
CREATE FUNCTION chat.touch_actor(p_tenant text, p_user text, p_name text,
                                 a jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_bot boolean := coalesce((a->>'$bot')::boolean, false);
BEGIN
    -- the common case is one lookup, as touch_user's, and writes nothing
    PERFORM 1 FROM chat.users
     WHERE tenant_id = p_tenant AND id = p_user AND bot = v_bot
       AND (p_name IS NULL OR name IS NOT DISTINCT FROM p_name);

    IF NOT FOUND THEN
        PERFORM chat.touch_user(p_tenant, p_user, p_name);

        UPDATE chat.users SET bot = v_bot
         WHERE tenant_id = p_tenant AND id = p_user AND bot <> v_bot;
    END IF;
END
$$;

-- chat_policy: the site's function of who may start a conversation with
-- whom, named by the module (chat.policy) and called here, in the
-- creating transaction, with the caller's kept claims; a text it returns
-- refuses with 403 and that text.  The module allows the name only in
-- lower-case letters, digits and "_": it is used as it is.
CREATE FUNCTION chat.policy_check(p_tenant text, p_user text,
                                  p_targets text[], a jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_fn     text := nullif(current_setting('chat.policy', true), '');
    v_reason text;
BEGIN
    IF v_fn IS NULL OR cardinality(p_targets) = 0 THEN
        RETURN;
    END IF;

    IF v_fn !~ '^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$' THEN
        RAISE EXCEPTION 'chat_policy names no function: %', v_fn;
    END IF;

    EXECUTE format('SELECT %s($1, $2, $3, $4)', v_fn) INTO v_reason
      USING p_tenant, p_user, p_targets, coalesce(a->'$claims', '{}');

    IF v_reason IS NOT NULL THEN
        PERFORM chat.fail(403, v_reason);
    END IF;
END
$$;

-- The caller and the users it names (who may never have connected yet)
-- exist.  All are inserted in one statement, in one order: two callers
-- naming each other wait for each other, they do not deadlock.
CREATE FUNCTION chat.touch_users(p_tenant text, p_user text, p_name text,
                                 p_users text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat.tenants (id) VALUES (p_tenant) ON CONFLICT DO NOTHING;

    INSERT INTO chat.users (tenant_id, id)
    SELECT p_tenant, u
      FROM (SELECT DISTINCT u FROM unnest(p_users || p_user) u) x
     ORDER BY u COLLATE "C"
    ON CONFLICT DO NOTHING;

    IF p_name IS NOT NULL THEN
        UPDATE chat.users SET name = p_name
         WHERE tenant_id = p_tenant AND id = p_user
           AND name IS DISTINCT FROM p_name;
    END IF;
END
$$;


-- access

-- The caller's membership; a conversation the caller is not in does not
-- exist for them.  With p_lock the conversation row is locked first: it
-- orders every writer of the conversation and guards last_seq.  A writer
-- that writes users (touch_user, touch_users) does so before it locks the
-- conversation: in one lock order, two writers wait for each other and do
-- not deadlock.
CREATE FUNCTION chat.enter(p_tenant text, p_user text, p_conversation bigint,
                           p_lock boolean,
                           OUT c chat.conversations, OUT m chat.members)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lock THEN
        SELECT * INTO c FROM chat.conversations
         WHERE id = p_conversation AND tenant_id = p_tenant
           FOR UPDATE;
    ELSE
        SELECT * INTO c FROM chat.conversations
         WHERE id = p_conversation AND tenant_id = p_tenant;
    END IF;

    IF FOUND THEN
        SELECT * INTO m FROM chat.members
         WHERE conversation_id = p_conversation AND user_id = p_user;
    END IF;

    IF m.user_id IS NULL THEN
        PERFORM chat.fail(404, 'conversation not found');
    END IF;
END
$$;

CREATE FUNCTION chat.require_rank(p_member chat.members, p_role text,
                                  p_what text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF chat.rank(p_member.role) < chat.rank(p_role) THEN
        PERFORM chat.fail(403, p_what);
    END IF;
END
$$;

CREATE FUNCTION chat.require_open(p_conversation chat.conversations)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_conversation.archived_at IS NOT NULL THEN
        PERFORM chat.fail(403, 'the conversation is archived and read-only');
    END IF;
END
$$;
