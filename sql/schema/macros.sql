-- What every compliance rule (sql/compliance) shares, written once. The macros live in the
-- warehouse file, so a reader that opens it read-only finds them; every load creates them again.

-- The audit period of a rule: day (a start_day) between the bound dates $start and $end,
-- inclusive; a NULL bound leaves that side open. DuckDB inlines the macro, so the comparison
-- still reaches the scan of start_day (the partition of every table) as a filter.
CREATE OR REPLACE MACRO in_period(day, period_start, period_end) AS
    day BETWEEN coalesce(CAST(period_start AS DATE), DATE '0001-01-01')
            AND coalesce(CAST(period_end AS DATE), DATE '9999-12-31');
