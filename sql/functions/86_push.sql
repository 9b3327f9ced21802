-- ngx_chat: Web Push subscriptions (sql/migrations/007_push.sql).  The
-- routes push/key and push/subscriptions call the api_ functions; the
-- outbox (src/ngx_chat_outbox.c) asks chat.push_targets for a user's
-- subscriptions when a delivery goes, and hands back those the push
-- service said are gone (404, 410) to chat.push_gone.

-- base64url without padding, as browsers give keys, to bytes; NULL when
-- it is not that
CREATE FUNCTION chat.base64url(p text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p !~ '^[A-Za-z0-9_-]*$' OR length(p) % 4 = 1 THEN
        RETURN NULL;
    END IF;
    RETURN decode(rpad(translate(p, '-_', '+/'),
                       (length(p) + 3) / 4 * 4, '='), 'base64');
END
$$;

-- the server's VAPID public key, for a browser's subscribe(): the module
-- tells its connections chat.push_key when chat_push is configured
CREATE FUNCTION chat.api_push_key(p_tenant text, p_user text,
                                  p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_key text := nullif(current_setting('chat.push_key', true), '');
BEGIN
    IF v_key IS NULL THEN
        PERFORM chat.fail(404, 'Web Push is not configured (chat_push)');
    END IF;
    RETURN QUERY SELECT 200, NULL::text,
                        json_build_object('public_key', v_key)::text;
END
$$;

-- A browser's subscription for the user: 201, or 200 when the endpoint
-- was already the user's (its keys are replaced).  A user keeps at most
-- 20: the oldest go.
CREATE FUNCTION chat.api_push_subscribe(p_tenant text, p_user text,
                                        p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_endpoint text := a->>'endpoint';
    v_key      bytea := chat.base64url(a->>'p256dh');
    v_auth     bytea := chat.base64url(a->>'auth');
    v_old      chat.push_subscriptions;
    v_row      chat.push_subscriptions;
BEGIN
    IF v_endpoint !~ '^https://[^/?#@\s]+(/[^\s]*)?$' THEN
        PERFORM chat.fail(400, '"endpoint": must be an https:// URL');
    END IF;
    IF v_key IS NULL OR length(v_key) <> 65 OR get_byte(v_key, 0) <> 4 THEN
        PERFORM chat.fail(400, '"p256dh": must be an uncompressed P-256 '
                               'point (65 bytes), base64url');
    END IF;
    IF v_auth IS NULL OR length(v_auth) <> 16 THEN
        PERFORM chat.fail(400, '"auth": must be 16 bytes, base64url');
    END IF;

    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);

    SELECT * INTO v_old FROM chat.push_subscriptions
     WHERE endpoint = v_endpoint FOR UPDATE;

    INSERT INTO chat.push_subscriptions (tenant_id, user_id, endpoint,
                                         p256dh, auth)
    VALUES (p_tenant, p_user, v_endpoint, a->>'p256dh', a->>'auth')
    ON CONFLICT (endpoint) DO UPDATE
       SET tenant_id = excluded.tenant_id, user_id = excluded.user_id,
           p256dh = excluded.p256dh, auth = excluded.auth,
           created_at = now()
    RETURNING * INTO v_row;

    DELETE FROM chat.push_subscriptions s
     WHERE s.tenant_id = p_tenant AND s.user_id = p_user
       AND s.id NOT IN (SELECT x.id FROM chat.push_subscriptions x
                         WHERE x.tenant_id = p_tenant
                           AND x.user_id = p_user
                         ORDER BY x.created_at DESC, x.id DESC LIMIT 20);

    RETURN QUERY SELECT
        CASE WHEN v_old.tenant_id = p_tenant AND v_old.user_id = p_user
             THEN 200 ELSE 201 END,
        NULL::text,
        json_build_object('id', v_row.id, 'endpoint', v_row.endpoint,
                          'created_at', chat.ts(v_row.created_at))::text;
END
$$;

-- The user's subscription of that endpoint ends: 204; 404 when the user
-- has none there (another user's is not theirs to end)
CREATE FUNCTION chat.api_push_unsubscribe(p_tenant text, p_user text,
                                          p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM chat.push_subscriptions
     WHERE tenant_id = p_tenant AND user_id = p_user
       AND endpoint = a->>'endpoint';
    IF NOT FOUND THEN
        PERFORM chat.fail(404, 'no such subscription');
    END IF;
    RETURN QUERY SELECT 204, NULL::text, NULL::text;
END
$$;

-- where a delivery to the user goes
CREATE FUNCTION chat.push_targets(p_tenant text, p_user text)
RETURNS TABLE (id bigint, endpoint text, p256dh text, auth text)
LANGUAGE sql STABLE AS $$
    SELECT s.id, s.endpoint, s.p256dh, s.auth
      FROM chat.push_subscriptions s
     WHERE s.tenant_id = p_tenant AND s.user_id = p_user
     ORDER BY s.id
$$;

-- subscriptions the push service no longer knows
CREATE FUNCTION chat.push_gone(p_ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM chat.push_subscriptions WHERE id = ANY (p_ids)
$$;
