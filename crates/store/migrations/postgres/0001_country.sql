-- The synthetic (or imported) country: base data every service reads.
-- Instants are BIGINT milliseconds since the Unix epoch; dates are ISO 8601 TEXT.

CREATE TABLE country (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    size TEXT NOT NULL,
    seed BIGINT NOT NULL,
    as_of TEXT NOT NULL,
    generator_version TEXT NOT NULL,
    generated_at BIGINT NOT NULL
);

CREATE TABLE municipality (
    number TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    county TEXT NOT NULL,
    population BIGINT NOT NULL
);

CREATE TABLE person (
    nin TEXT PRIMARY KEY,
    number_kind TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    municipality TEXT NOT NULL,
    street_address TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    postal_place TEXT NOT NULL,
    mother_nin TEXT,
    father_nin TEXT,
    spouse_nin TEXT
);

CREATE TABLE organisation (
    orgnr TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_orgnr TEXT,
    municipality TEXT NOT NULL,
    street_address TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    postal_place TEXT NOT NULL
);

CREATE TABLE health_personnel (
    hpr BIGINT PRIMARY KEY,
    nin TEXT NOT NULL,
    profession TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL
);

CREATE TABLE gp_list (
    id BIGINT PRIMARY KEY,
    gp_hpr BIGINT NOT NULL,
    office_orgnr TEXT NOT NULL,
    municipality TEXT NOT NULL,
    capacity BIGINT NOT NULL
);

-- One row per person: every person is on exactly one GP's list.
CREATE TABLE gp_list_member (
    nin TEXT PRIMARY KEY,
    list_id BIGINT NOT NULL
);

CREATE TABLE communication_party (
    her_id BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    orgnr TEXT NOT NULL,
    parent_her_id BIGINT,
    hpr BIGINT,
    municipality TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    valid_from TEXT NOT NULL
);

-- Private keys of the synthetic country's parties, so a test lab can sign and decrypt as any
-- party. A production register holds certificates only.
CREATE TABLE synthetic_key (
    id BIGINT PRIMARY KEY,
    private_key_pem TEXT NOT NULL
);

CREATE TABLE certificate_authority (
    name TEXT PRIMARY KEY,
    certificate_pem TEXT NOT NULL,
    private_key_pem TEXT
);

CREATE TABLE certificate (
    serial TEXT PRIMARY KEY,
    orgnr TEXT NOT NULL,
    usage TEXT NOT NULL,
    subject TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    der BYTEA NOT NULL,
    key_id BIGINT REFERENCES synthetic_key (id)
);

CREATE TABLE cpp_process (
    her_id BIGINT NOT NULL,
    message_type TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (her_id, message_type, version)
);

CREATE INDEX certificate_by_orgnr ON certificate (orgnr);
CREATE INDEX party_by_orgnr ON communication_party (orgnr);
