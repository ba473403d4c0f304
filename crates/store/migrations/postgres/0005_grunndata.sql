-- Grunndata: what Persontjenesten serves beyond 0001's person row, its change-event feed, and
-- the log of every look-up of a person. Instants are milliseconds since the Unix epoch.

-- The opaque id Persontjenesten hands out (it never reveals the fødselsnummer).
ALTER TABLE person ADD COLUMN person_id TEXT NOT NULL DEFAULT '';
-- PersonStatusType as the API names it (Resident, Temporary, Deceased, Emigrated, ...).
ALTER TABLE person ADD COLUMN status TEXT NOT NULL DEFAULT 'Resident';
-- AddressConfidentiality of the person's addresses (FREG's adressebeskyttelse).
ALTER TABLE person ADD COLUMN address_protection TEXT NOT NULL DEFAULT 'Unclassified';
ALTER TABLE person ADD COLUMN deceased_date TEXT;
-- The event that produced this version of the person (0: as generated).
ALTER TABLE person ADD COLUMN last_event BIGINT NOT NULL DEFAULT 0;

-- The change-event feed systems poll to stay current, in the order the changes were made.
CREATE TABLE person_event (
    seq BIGINT PRIMARY KEY,
    nin TEXT NOT NULL,
    -- EventType as the API names it (PersonIsCreated, PersonIsDeceased, ChangeInName, ...).
    event_type TEXT NOT NULL,
    -- The date the change took effect in the population register.
    effective_on TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    -- What the change replaced (JSON), so history can show the earlier value.
    previous TEXT
);
CREATE INDEX person_event_by_nin ON person_event (nin, seq);

-- The last day the synthetic change run has made (a day may pass without any event).
CREATE TABLE person_event_day (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_day TEXT NOT NULL
);

-- Who looked up whom, for what purpose and under which legal basis: one row per person returned
-- (or asked for and not found) by each request.
CREATE TABLE person_lookup (
    at BIGINT NOT NULL,
    nin TEXT NOT NULL,
    -- The operation (get-by-nin, bulk-by-nin, get-by-id, search, fhir-patient, ...).
    operation TEXT NOT NULL,
    -- The bundle the caller used: no-legal-basis or legal-basis.
    bundle TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    purpose TEXT NOT NULL,
    found BOOLEAN NOT NULL,
    client_id TEXT NOT NULL,
    orgnr TEXT NOT NULL,
    child_orgnr TEXT,
    user_pid TEXT,
    user_hpr BIGINT,
    token_id TEXT NOT NULL
);
-- By time only: an index by person takes a random page write per look-up, which halved the
-- look-up rate (measured). Rows arrive in time order, so this index only ever appends; an
-- investigation of one person reads a time window.
CREATE INDEX person_lookup_by_time ON person_lookup (at);
