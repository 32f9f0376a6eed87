//! Dates: INTERNALDATE from the MDA's unix seconds, and SEARCH dates as days.
//!
//! imap-types builds its `DateTime` only from a `chrono` value and this crate does
//! not depend on chrono, so the date is written in IMAP syntax here and read back
//! by imap-codec (through a throwaway imap-next parser on an APPEND line). Once
//! chrono is a direct dependency, `internal_date` becomes one `try_from`.

use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::datetime::{DateTime, NaiveDate};
use imap_next::imap_types::response::Greeting;
use imap_next::server::{Event, Options, Server};
use imap_next::{Interrupt, State};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub(super) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `dd-Mon-yyyy hh:mm:ss +0000` (RFC 9051 `date-time`) for unix seconds, in UTC.
pub(super) fn imap_date_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS
        .get((m as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{d:02}-{month}-{y:04} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// INTERNALDATE of a message stored at `unix` seconds. `None` only for dates IMAP
/// cannot write (years outside 0..=9999).
pub(super) fn internal_date(unix: i64) -> Option<DateTime> {
    let unix = unix.clamp(0, 253_402_300_799); // 9999-12-31T23:59:59Z
    let line = format!("d APPEND x \"{}\" {{1+}}\r\nx\r\n", imap_date_time(unix));
    let greeting = Greeting::ok(None, "date").ok()?;
    let mut parser = Server::new(Options::default(), greeting);
    parser.enqueue_input(line.as_bytes());
    for _ in 0..16 {
        match parser.next() {
            Ok(Event::CommandReceived { command }) => {
                return match command.body {
                    CommandBody::Append { date, .. } => date,
                    _ => None,
                };
            }
            Ok(_) | Err(Interrupt::Io(imap_next::Io::Output(_))) => {}
            Err(_) => return None,
        }
    }
    None
}

/// A SEARCH date as days since 1970-01-01 (chrono writes it as `YYYY-MM-DD`).
pub(super) fn search_days(date: &NaiveDate) -> Option<i64> {
    let s = date.as_ref().to_string();
    let mut it = s.splitn(3, '-');
    let y = it.next()?.parse::<i64>().ok()?;
    let m = it.next()?.parse::<u32>().ok()?;
    let d = it.next()?.parse::<u32>().ok()?;
    Some(days_from_civil(y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(imap_date_time(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(imap_date_time(1_700_000_000), "14-Nov-2023 22:13:20 +0000");
    }

    #[test]
    fn internal_date_is_built_by_imap_codec() {
        let Some(date) = internal_date(1_700_000_000) else {
            panic!("no date");
        };
        assert_eq!(date.as_ref().timestamp(), 1_700_000_000);
    }
}
