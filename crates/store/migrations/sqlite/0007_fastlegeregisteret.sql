-- Fastlegeregisteret beyond 0001's lists: when each person's place on a list began, the places
-- that ended (the GP history), and the lists' members by list for paging and counting.

-- The day the current place began (Fastlegeregisteret's Period.From). The scheme began on
-- 2001-06-01; earlier stores know no better day.
ALTER TABLE gp_list_member ADD COLUMN since TEXT NOT NULL DEFAULT '2001-06-01';
-- Nobody was listed before they were born.
UPDATE gp_list_member SET since = (SELECT p.birth_date FROM person p WHERE p.nin = gp_list_member.nin)
WHERE since < (SELECT p.birth_date FROM person p WHERE p.nin = gp_list_member.nin);
CREATE INDEX gp_list_member_by_list ON gp_list_member (list_id, nin);

-- Places that ended: changed GP, died, emigrated. Current places are in gp_list_member.
CREATE TABLE gp_list_history (
    nin TEXT NOT NULL,
    list_id BIGINT NOT NULL,
    valid_from TEXT NOT NULL,
    -- The first day the person was no longer on the list.
    valid_to TEXT NOT NULL,
    -- changed-gp, deceased, emigrated.
    end_reason TEXT NOT NULL,
    PRIMARY KEY (nin, valid_to, list_id)
) WITHOUT ROWID;
