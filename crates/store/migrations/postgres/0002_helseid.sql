-- HelseID: signing keys, clients, and the short-lived state every node must share (replayed
-- identifiers, pending logins, authorization codes, revocations). Instants are BIGINT seconds
-- since the Unix epoch, as in the JWTs they guard.

-- A key signs from `active_from` until the next key's `active_from`, and stays in the JWKS until
-- every token it signed has expired.
CREATE TABLE helseid_signing_key (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_der BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    -- Milliseconds, to order keys made in the same second.
    created_at_ms BIGINT NOT NULL,
    active_from BIGINT NOT NULL
);

-- Server secrets (DPoP nonces, subject pseudonyms), made once by whichever node needs one first.
CREATE TABLE helseid_secret (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE helseid_client (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- The client's public JWK set (RFC 7517), JSON.
    jwks TEXT NOT NULL,
    -- Space-separated lists, as in OAuth metadata.
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    orgnr_parent TEXT NOT NULL,
    orgnr_child TEXT,
    dpop_required BOOLEAN NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every JWT identifier seen (client assertions, DPoP proofs), until it could no longer be
-- accepted anyway, as a short hash of who made it and its jti. The primary key is the replay
-- check.
CREATE TABLE helseid_jti (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- Pushed (RFC 9126) and in-progress authorization requests.
CREATE TABLE helseid_auth_request (
    id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Authorization codes, by SHA-256 of the code: a leaked table does not leak usable codes. A
-- used code is kept (until its token would have expired) so that a second use revokes the token
-- the first use got (RFC 6749 §4.1.2).
CREATE TABLE helseid_code (
    code_hash TEXT PRIMARY KEY,
    grant_json TEXT NOT NULL,
    valid_until BIGINT NOT NULL,
    used BOOLEAN NOT NULL,
    token_jti TEXT,
    expires_at BIGINT NOT NULL
);

-- Revoked access tokens until they expire; every node reads them all once a second.
CREATE TABLE helseid_revoked (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE INDEX helseid_jti_by_expiry ON helseid_jti (expires_at);
CREATE INDEX helseid_revoked_by_expiry ON helseid_revoked (expires_at);
CREATE INDEX helseid_code_by_expiry ON helseid_code (expires_at);
CREATE INDEX helseid_auth_request_by_expiry ON helseid_auth_request (expires_at);
CREATE INDEX health_personnel_by_nin ON health_personnel (nin);
