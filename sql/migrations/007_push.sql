-- Web Push (chat_push; docs/notifications.md): the subscriptions a
-- browser made for its user.  The endpoint is the push service's URL for
-- that browser: one row each, so that subscribing again moves it (another
-- user signed in on the same browser).  p256dh and auth are the browser's
-- keys, base64url as it gives them.

CREATE TABLE chat.push_subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL,
    user_id     text NOT NULL,
    endpoint    text NOT NULL UNIQUE
                CHECK (octet_length(endpoint) BETWEEN 9 AND 1024),
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX push_subscriptions_user
    ON chat.push_subscriptions (tenant_id, user_id);
