-- Helsepersonellregisteret: what 0001's health_personnel row does not say. A person's approvals
-- (godkjenninger), each for one profession with an authorisation or licence and a period, the
-- specialities approved under it, and the periods it was suspended. Dates are ISO 8601 TEXT.

-- Pharmacists are provisorfarmasøyt (FA1) in kodeverk 9060; there is no plain "FA".
UPDATE health_personnel SET profession = 'FA1' WHERE profession = 'FA';

CREATE TABLE hpr_approval (
    hpr BIGINT NOT NULL,
    -- Helsepersonellkategori, kodeverk 9060 (LE, SP, FA1, FT, TL, ...).
    profession TEXT NOT NULL,
    -- Autorisasjon or lisens, kodeverk 7704 (1 Autorisasjon, 4 Lisens, 18 LIS1-lisens, ...).
    authorisation TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    -- A licence's end, or the day an authorisation was revoked; NULL while it stands.
    valid_to TEXT,
    PRIMARY KEY (hpr, profession, valid_from)
);

CREATE TABLE hpr_speciality (
    hpr BIGINT NOT NULL,
    profession TEXT NOT NULL,
    -- Kodeverk 7426 (1 Allmennmedisin, ...).
    speciality TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to TEXT,
    PRIMARY KEY (hpr, speciality, valid_from)
);

-- A suspension stops every approval of the profession for its period (Statens helsetilsyn).
CREATE TABLE hpr_suspension (
    hpr BIGINT NOT NULL,
    profession TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    -- NULL: until further notice.
    valid_to TEXT,
    PRIMARY KEY (hpr, profession, valid_from)
);

-- Personnel registered before this register existed keep an open authorisation of their
-- profession from the country's date, so HelseID still finds them authorised.
INSERT INTO hpr_approval (hpr, profession, authorisation, valid_from, valid_to)
SELECT h.hpr, h.profession, '1', c.as_of, NULL FROM health_personnel h, country c;
