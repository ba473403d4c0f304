-- The message exchange (Meldingstjener): accepted business documents, one delivery per receiver,
-- and the message counter. Instants are milliseconds since the Unix epoch.

CREATE TABLE message (
    -- The id the API hands out (a UUID).
    id TEXT PRIMARY KEY,
    sender_her_id BIGINT NOT NULL,
    sender_org TEXT NOT NULL,
    -- MsgInfo/MsgId of a MsgHead, Id of an AppRec: a sender's own name for the document.
    document_id TEXT NOT NULL,
    -- SHA-256 of the document: a resubmission with the same MsgId must be the same document.
    document_sha256 BLOB NOT NULL,
    message_type TEXT NOT NULL,
    -- GenDate as the document writes it, and as an instant to order mailboxes by.
    gen_date TEXT NOT NULL,
    gen_at BIGINT NOT NULL,
    is_apprec BOOLEAN NOT NULL,
    content_type TEXT NOT NULL,
    document BLOB NOT NULL,
    -- For an AppRec: the message it answers.
    original_id TEXT REFERENCES message (id),
    -- Who made it: a member's system (nhn-source-system), or the hub for a non-delivery notice.
    source_system TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (sender_her_id, document_id)
);

CREATE TABLE delivery (
    message_id TEXT NOT NULL REFERENCES message (id),
    receiver_her_id BIGINT NOT NULL,
    receiver_org TEXT NOT NULL,
    gen_at BIGINT NOT NULL,
    read_at BIGINT,
    -- Unconfirmed until the receiver marks it read (Acknowledged), Rejected when delivery gave up.
    transport_state TEXT NOT NULL,
    -- 1 OK, 2 Avvist, 3 OK feil i delmelding (kodeverk 8220), with its errors as JSON.
    apprec_status SMALLINT,
    apprec_errors TEXT,
    apprec_id TEXT REFERENCES message (id),
    -- Whether the sender's CPA expects an AppRec from this receiver.
    expects_apprec BOOLEAN NOT NULL,
    -- Re-deliveries so far, and when the watcher looks at this delivery next (NULL once settled).
    redeliveries BIGINT NOT NULL DEFAULT 0,
    due_at BIGINT,
    notice_id TEXT REFERENCES message (id),
    PRIMARY KEY (message_id, receiver_her_id)
);
-- A mailbox: the unread messages of one receiver, oldest first.
CREATE INDEX delivery_unread ON delivery (receiver_her_id, gen_at, message_id) WHERE read_at IS NULL;
CREATE INDEX delivery_due ON delivery (due_at) WHERE due_at IS NOT NULL;

-- Meldingsteller: messages per day, sender organisation, receiver organisation and type.
CREATE TABLE message_count (
    day TEXT NOT NULL,
    sender_org TEXT NOT NULL,
    receiver_org TEXT NOT NULL,
    message_type TEXT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (day, sender_org, receiver_org, message_type)
) WITHOUT ROWID;
