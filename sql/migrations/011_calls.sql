-- Calls (docs/api.md, Calls): an invitation that rings, is answered or
-- not, and ends; its signaling (SDP, ICE) is relayed to the peers'
-- connections and never stored.  What is kept is the call's row and, at
-- its end, a message of type "call" with its outcome and duration.

CREATE TABLE chat.calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    conversation_id bigint NOT NULL REFERENCES chat.conversations
                    ON DELETE CASCADE,
    caller_id       text NOT NULL,
    video           boolean NOT NULL DEFAULT false,
    screen          boolean NOT NULL DEFAULT false,
    state           text NOT NULL DEFAULT 'ringing'
                    CHECK (state IN ('ringing', 'active', 'ended')),
    participants    text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    ended_at        timestamptz,
    outcome         text CHECK (outcome IN ('ended', 'missed', 'declined',
                                            'cancelled', 'busy'))
);

-- one call under way a conversation
CREATE UNIQUE INDEX calls_live ON chat.calls (conversation_id)
    WHERE state <> 'ended';
CREATE INDEX calls_ringing ON chat.calls (created_at)
    WHERE state = 'ringing';
