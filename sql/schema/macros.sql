-- What every compliance rule (sql/compliance) shares, written once. The macros live in the
-- warehouse file, so a reader that opens it read-only finds them; every load creates them again.

-- The audit period of a rule: day (a start_day) between the bound dates $start and $end,
-- inclusive; a NULL bound leaves that side open. DuckDB inlines the macro, so the comparison
-- still reaches the scan of start_day (the partition of every table) as a filter.
CREATE OR REPLACE MACRO in_period(day, period_start, period_end) AS
    day BETWEEN coalesce(CAST(period_start AS DATE), DATE '0001-01-01')
            AND coalesce(CAST(period_end AS DATE), DATE '9999-12-31');

-- The columns that open every finding and name the session it is about, taken from a row f
-- (a table or query alias, passed whole) that has them under these names: the session, when it
-- started, who ran it on which connection in which environment, and its review. A rule selects
-- unnest(finding_session(f)) (the eight columns, in this order) and then its own evidence.
CREATE OR REPLACE MACRO finding_session(f) AS struct_pack(
    session_id := f.session_id,
    start_day := f.start_day,
    start_date := f.start_date,
    user_email := f.user_email,
    connection := f.connection,
    environment := f.environment,
    review_id := f.review_id,
    review_status := f.review_status
);

-- finding_session, then approvers: the emails of the session's approving reviewers (the row's
-- approved_by list), comma separated.
CREATE OR REPLACE MACRO finding_evidence(f) AS struct_insert(
    finding_session(f),
    approvers := array_to_string(f.approved_by, ', ')
);
