//! Request deadlines, sans-IO: the slow-drip (slowloris) defence every line
//! protocol shares. Time is an argument (`now`), never read here.
//!
//! A per-read idle timer alone lets a client hold a connection forever by sending
//! one byte just before each timeout. So on top of it, a *request* (one command
//! line, with its literals for IMAP, or one message body: DATA, a BDAT chunk, an
//! IMAP APPEND literal after login) must be complete within a deadline counted from
//! the read that started it:
//! - a command: `command` (default 60 s, like Postfix's `smtpd_per_record_deadline`
//!   applied to `smtpd_timeout`, but always on);
//! - a message body: `data` plus one second per `min_data_rate` bytes received
//!   (Postfix 3.7's `smtpd_min_data_rate` idea): a transfer that keeps up at least
//!   that rate is never cut, any transfer gets at least `data`, and the size limit
//!   bounds how long even a fast-enough drip can last.
//!
//! Between requests (nothing buffered) only the idle timer runs. The session says
//! where it stands with a [`Progress`] after every batch of input.

use std::time::{Duration, Instant};

/// Where a session stands in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests: nothing buffered, waiting for the client.
    Idle,
    /// Part of a command (line, or IMAP command with its literals) received.
    Command,
    /// Inside a message body (DATA, BDAT chunk, IMAP literal after login).
    Data,
}

/// What a session reports after each batch of input: its phase, and how many
/// requests it has completed so far (a change means a new request started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub completed: u64,
}

/// The deadlines; see the module header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub command: Duration,
    pub data: Duration,
    /// Bytes per second of body that earn one more second; 0: a fixed `data`.
    pub min_data_rate: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(60),
            data: Duration::from_secs(600),
            min_data_rate: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Current {
    started: Instant,
    data: bool,
    bytes: u64,
}

/// Tracks the request under way and its deadline.
#[derive(Debug, Clone)]
pub struct RequestClock {
    limits: Deadlines,
    completed: u64,
    current: Option<Current>,
}

impl RequestClock {
    pub fn new(limits: Deadlines) -> Self {
        Self {
            limits,
            completed: 0,
            current: None,
        }
    }

    /// The session consumed `bytes` read at `now` and now stands at `progress`.
    pub fn update(&mut self, now: Instant, bytes: usize, progress: Progress) {
        if progress.completed != self.completed {
            self.completed = progress.completed;
            self.current = None;
        }
        match progress.phase {
            Phase::Idle => self.current = None,
            Phase::Command | Phase::Data => {
                let cur = self.current.get_or_insert(Current {
                    started: now,
                    data: false,
                    bytes: 0,
                });
                if progress.phase == Phase::Data {
                    // A command that turns into a body keeps its start: the
                    // deadline only grows to the body's.
                    cur.data = true;
                    cur.bytes = cur.bytes.saturating_add(bytes as u64);
                }
            }
        }
    }

    /// When the request under way must be complete; `None` between requests.
    pub fn deadline(&self) -> Option<Instant> {
        let cur = self.current?;
        let base = if cur.data {
            let credit = match self.limits.min_data_rate {
                0 => Duration::ZERO,
                rate => Duration::from_secs_f64(cur.bytes as f64 / rate as f64),
            };
            self.limits.data.saturating_add(credit)
        } else {
            self.limits.command
        };
        Some(cur.started + base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn limits() -> Deadlines {
        Deadlines {
            command: 10 * S,
            data: 100 * S,
            min_data_rate: 1000,
        }
    }

    fn at(phase: Phase, completed: u64) -> Progress {
        Progress { phase, completed }
    }

    #[test]
    fn idle_has_no_deadline_and_a_partial_line_keeps_its_first_byte_time() {
        let t0 = Instant::now();
        let mut c = RequestClock::new(limits());
        c.update(t0, 0, at(Phase::Idle, 0));
        assert_eq!(c.deadline(), None);
        // One byte at a time: the deadline stays where the first byte put it.
        for i in 0..5 {
            c.update(t0 + i * S, 1, at(Phase::Command, 0));
            assert_eq!(c.deadline(), Some(t0 + 10 * S));
        }
        // The line completes: back to idle.
        c.update(t0 + 6 * S, 1, at(Phase::Idle, 1));
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn a_completed_request_restarts_the_clock_even_with_a_partial_one_behind_it() {
        let t0 = Instant::now();
        let mut c = RequestClock::new(limits());
        c.update(t0, 3, at(Phase::Command, 0));
        c.update(t0 + 8 * S, 9, at(Phase::Command, 1));
        assert_eq!(c.deadline(), Some(t0 + 18 * S));
    }

    #[test]
    fn a_body_gets_the_data_deadline_plus_credit_for_its_bytes() {
        let t0 = Instant::now();
        let mut c = RequestClock::new(limits());
        c.update(t0, 6, at(Phase::Data, 1));
        c.update(t0 + 50 * S, 5000, at(Phase::Data, 1));
        // 100 s + 5006 bytes / 1000 B/s.
        assert_eq!(
            c.deadline(),
            Some(t0 + 100 * S + Duration::from_millis(5006))
        );
        c.update(t0 + 60 * S, 5, at(Phase::Idle, 2));
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn a_command_that_turns_into_a_literal_keeps_its_start() {
        let t0 = Instant::now();
        let mut c = RequestClock::new(Deadlines {
            min_data_rate: 0,
            ..limits()
        });
        c.update(t0, 20, at(Phase::Command, 4));
        c.update(t0 + 5 * S, 1_000_000, at(Phase::Data, 4));
        assert_eq!(c.deadline(), Some(t0 + 100 * S), "no credit at rate 0");
    }
}
