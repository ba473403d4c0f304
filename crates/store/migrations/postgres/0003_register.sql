-- The address register: validity ends, postal addresses, coverage areas, certificates per party
-- with their history, CPPs with roles and receipts, and the event feed that mirrors follow.
-- A store made before this migration has no certificates or CPPs left: make its country again.

ALTER TABLE communication_party ADD COLUMN valid_to TEXT;

-- The postal address, where it differs from the visiting address in street_address.
ALTER TABLE organisation ADD COLUMN post_address TEXT;
ALTER TABLE organisation ADD COLUMN post_code TEXT;
ALTER TABLE organisation ADD COLUMN post_place TEXT;

-- Municipalities (numbers) a party serves.
CREATE TABLE party_coverage (
    her_id BIGINT NOT NULL,
    municipality TEXT NOT NULL,
    PRIMARY KEY (her_id, municipality)
) ;

-- Every certificate a party has had: a rotated key must still decrypt old messages. Instants are
-- milliseconds since the Unix epoch.
DROP TABLE certificate;
CREATE TABLE certificate (
    -- SHA-256 of the DER, hex: unique whoever issued it.
    fingerprint TEXT PRIMARY KEY,
    her_id BIGINT NOT NULL,
    usage TEXT NOT NULL,
    serial TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    der BYTEA NOT NULL,
    added_at BIGINT NOT NULL,
    revoked_at BIGINT,
    key_id BIGINT REFERENCES synthetic_key (id)
);
CREATE INDEX certificate_by_party ON certificate (her_id);

-- One line of a party's collaboration protocol profile: a message type it sends or receives,
-- the versions it handles, the AppRec versions it returns and the message types it answers with.
-- Lists are space-separated.
DROP TABLE cpp_process;
CREATE TABLE cpp_process (
    her_id BIGINT NOT NULL,
    message_type TEXT NOT NULL,
    role TEXT NOT NULL,
    versions TEXT NOT NULL,
    receipts TEXT NOT NULL,
    replies TEXT NOT NULL,
    PRIMARY KEY (her_id, message_type, role)
) ;

-- Every change to the register, in commit order, with the party's whole state after it. Writers
-- take ids in order under one lock, so a reader that has seen id N has seen every id below N.
CREATE TABLE register_event (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    her_id BIGINT NOT NULL,
    change TEXT NOT NULL,
    actor TEXT NOT NULL,
    document TEXT NOT NULL
);
