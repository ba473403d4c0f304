-- Kjernejournal, the summary care record: each person's entries as FHIR R4 resources, the content
-- of shared documents, the episodes that give an organisation's staff a treatment relation, the
-- citizen's choices, the hash-chained audit, and the alerts the snooping rules raise from it.

-- One FHIR resource of a person's record. `resource` is the JSON as served.
CREATE TABLE kj_entry (
    id TEXT PRIMARY KEY,
    nin TEXT NOT NULL,
    -- critical, next-of-kin, own, medication, contact, vaccination, document.
    section TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    -- Who wrote it: hpr:<number>, pid:<fødselsnummer> (the citizen), client:<id>, synthetic.
    author TEXT NOT NULL,
    -- Milliseconds since the epoch.
    recorded BIGINT NOT NULL,
    resource TEXT NOT NULL
);
CREATE INDEX kj_entry_by_nin ON kj_entry (nin, section);

-- The attachment of a shared document (a DocumentReference entry).
CREATE TABLE kj_document (
    entry_id TEXT PRIMARY KEY REFERENCES kj_entry (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL
);

-- A stay or contact at an organisation (an Encounter entry): while it lasts, the organisation's
-- health personnel have a treatment relation with the person.
CREATE TABLE kj_episode (
    entry_id TEXT PRIMARY KEY REFERENCES kj_entry (id) ON DELETE CASCADE,
    nin TEXT NOT NULL,
    orgnr TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT
);
CREATE INDEX kj_episode_by_nin ON kj_episode (nin, orgnr);

-- A record's state beyond its entries. No row: open, critical information never registered,
-- not watched.
CREATE TABLE kj_record (
    nin TEXT PRIMARY KEY,
    -- open, restricted, reserved.
    privacy TEXT NOT NULL,
    -- When health personnel registered "no known critical information", if they did.
    nil_known_at BIGINT,
    -- An operator's marker for a person whose record draws curiosity (a public figure).
    watched BOOLEAN NOT NULL,
    updated BIGINT NOT NULL
);

-- Every access and change, as a FHIR AuditEvent, chained: hash = SHA-256 over the sequence
-- number, the previous row's hash and the event. The other columns repeat the event's facts for
-- queries; `helsenett audit verify` checks them against it.
CREATE TABLE kj_audit (
    seq BIGINT PRIMARY KEY,
    recorded BIGINT NOT NULL,
    nin TEXT NOT NULL,
    -- hpr:<number>, pid:<fødselsnummer>, client:<id>.
    actor TEXT NOT NULL,
    orgnr TEXT,
    -- normal, emergency, citizen, system.
    access TEXT NOT NULL,
    -- granted, denied.
    outcome TEXT NOT NULL,
    event TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX kj_audit_by_nin ON kj_audit (nin, seq);
CREATE INDEX kj_audit_by_actor ON kj_audit (actor, recorded);
-- Append-only: the database refuses a change or removal; one made behind its back (the triggers
-- dropped, the file edited) breaks the chain, which `helsenett audit verify` reports.
CREATE TRIGGER kj_audit_no_update BEFORE UPDATE ON kj_audit
BEGIN SELECT RAISE(ABORT, 'kj_audit is append-only'); END;
CREATE TRIGGER kj_audit_no_delete BEFORE DELETE ON kj_audit
BEGIN SELECT RAISE(ABORT, 'kj_audit is append-only'); END;

-- The chain's last link. Each audit transaction locks this row first, so the chain has one
-- writer at a time across all nodes.
CREATE TABLE kj_audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO kj_audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Possible snooping, for an operator. One alert per rule and audit record.
CREATE TABLE kj_alert (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    raised BIGINT NOT NULL,
    rule TEXT NOT NULL,
    audit_seq BIGINT NOT NULL,
    actor TEXT NOT NULL,
    nin TEXT NOT NULL,
    detail TEXT NOT NULL,
    UNIQUE (rule, audit_seq)
);

-- How far along the audit chain the snooping rules have looked, and the emergency accesses whose
-- follow-up (a treatment relation afterwards) they have checked.
CREATE TABLE kj_detector (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    followed_up BIGINT NOT NULL
);
INSERT INTO kj_detector (id, seq, followed_up) VALUES (1, 0, 0);
