//! Dates: INTERNALDATE from the MDA's unix seconds, and SEARCH dates as days.
//!
//! imap-types builds its `DateTime` from chrono, so chrono does the calendar work.

use chrono::{FixedOffset, TimeZone};
use imap_next::imap_types::datetime::{DateTime, NaiveDate};

/// INTERNALDATE of a message stored at `unix` seconds, in UTC. `None` only for
/// dates IMAP cannot write (years outside 0..=9999).
pub(super) fn internal_date(unix: i64) -> Option<DateTime> {
    let utc = FixedOffset::east_opt(0)?;
    let when = utc.timestamp_opt(unix, 0).single()?;
    DateTime::try_from(when).ok()
}

/// A SEARCH date as days since 1970-01-01.
pub(super) fn search_days(date: &NaiveDate) -> Option<i64> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some(date.as_ref().signed_duration_since(epoch).num_days())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_date_keeps_the_instant() {
        let Some(date) = internal_date(1_700_000_000) else {
            panic!("no date");
        };
        assert_eq!(date.as_ref().timestamp(), 1_700_000_000);
    }

    #[test]
    fn search_dates_count_days_from_the_epoch() {
        let day = |y, m, d| {
            NaiveDate::try_from(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()).unwrap()
        };
        assert_eq!(search_days(&day(1970, 1, 1)), Some(0));
        assert_eq!(search_days(&day(2023, 11, 14)), Some(19_675));
    }
}
