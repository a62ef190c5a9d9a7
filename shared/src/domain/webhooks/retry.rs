//! What happens after one delivery attempt: delivered, tried again later (when, and how many times), given
//! up on, or the endpoint disabled. Retried are timeouts, connection failures, 408, 429 (honouring
//! `Retry-After`) and 5xx; any other 4xx is the receiver refusing the event, and trying it again for hours
//! (Rocket.Chat's users' complaint) would not change the answer; `410 Gone` disables the endpoint.

use std::time::Duration;

/// The default schedule: the waits before the 2nd, 3rd, … attempt (7 retries, ~8.7 h in all).
pub const DEFAULT_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(7200),
    Duration::from_secs(21600),
];

/// Most retries a schedule may have.
pub const MAX_RETRIES: usize = 20;

/// The schedule a setting writes as waits in seconds, comma-separated (`5,30,120`): 1 to
/// [`MAX_RETRIES`] waits, each from 1 s to a day. (An empty setting is the [`DEFAULT_SCHEDULE`].)
pub fn parse_schedule(setting: &str) -> Result<Vec<Duration>, String> {
    if setting.trim().is_empty() {
        return Ok(DEFAULT_SCHEDULE.to_vec());
    }
    let waits = setting
        .split(',')
        .map(|wait| match wait.trim().parse::<u64>() {
            Ok(secs @ 1..=86_400) => Ok(Duration::from_secs(secs)),
            _ => Err(format!("{wait:?} is not a wait from 1 to 86400 seconds")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > MAX_RETRIES {
        return Err(format!("at most {MAX_RETRIES} retries"));
    }
    Ok(waits)
}

/// The longest `Retry-After` honoured: a receiver asking for more waits the schedule's last step.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(21600);

/// An endpoint that has failed every attempt for this long is disabled (and the operator told).
pub const DISABLE_AFTER_FAILING: Duration = Duration::from_secs(24 * 3600);

/// How one attempt ended, as the sender saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered with this status; `retry_after` is its `Retry-After`, when it sent one
    /// that parsed (seconds, or an HTTP date turned into a wait).
    Answered {
        /// The HTTP status.
        status: u16,
        /// The receiver's requested wait.
        retry_after: Option<Duration>,
    },
    /// No answer within the timeout.
    TimedOut,
    /// No connection (refused, reset, DNS failure, TLS failure, or an address the guard refuses).
    Unreachable,
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx: done.
    Delivered,
    /// Try again after this wait.
    RetryAfter(Duration),
    /// Retryable, but the schedule is used up: dead-letter it.
    Exhausted,
    /// The receiver refused the event for good (a 4xx other than 408, 410 and 429): dead-letter it
    /// without retrying.
    Refused,
    /// `410 Gone`: dead-letter it and disable the endpoint.
    Gone,
}

/// The verdict on attempt number `attempt` (1 for the first) under `schedule`.
pub fn verdict(attempt_number: usize, outcome: Attempt, schedule: &[Duration]) -> Verdict {
    let retryable = match outcome {
        Attempt::Answered { status, .. } if (200..300).contains(&status) => return Verdict::Delivered,
        Attempt::Answered { status: 410, .. } => return Verdict::Gone,
        Attempt::Answered { status, .. } => status == 408 || status == 429 || !(200..500).contains(&status),
        Attempt::TimedOut | Attempt::Unreachable => true,
    };
    if !retryable {
        return Verdict::Refused;
    }
    let Some(&scheduled) = schedule.get(attempt_number.saturating_sub(1)) else {
        return Verdict::Exhausted;
    };
    let wait = match outcome {
        // A receiver may slow us down, never speed us up past the schedule.
        Attempt::Answered {
            retry_after: Some(asked),
            ..
        } => asked.clamp(scheduled, MAX_RETRY_AFTER.max(scheduled)),
        _ => scheduled,
    };
    Verdict::RetryAfter(wait)
}

/// A `Retry-After` header's wait: delay-seconds, or an HTTP date (`now_secs` is the Unix time now).
pub fn parse_retry_after(value: &str, now_secs: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate_secs(value)?;
    Some(Duration::from_secs(u64::try_from(at - now_secs).unwrap_or(0)))
}

/// The Unix time of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires senders
/// to use.
fn httpdate_secs(value: &str) -> Option<i64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    // Unsigned and bounded, so a hostile date can neither be negative nor overflow the arithmetic below.
    let (day, year): (u8, u16) = (day.parse().ok()?, year.parse().ok()?);
    let clock: Vec<u8> = time.split(':').map(str::parse).collect::<Result<_, _>>().ok()?;
    let [hours, minutes, seconds] = clock.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || *hours > 23 || *minutes > 59 || *seconds > 60 {
        return None;
    }
    let (day, year) = (i64::from(day), i64::from(year));
    let (hours, minutes, seconds) = (i64::from(*hours), i64::from(*minutes), i64::from(*seconds));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hours * 3600 + minutes * 60 + seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_read_from_seconds_and_bounded() {
        let secs = |waits: Vec<Duration>| waits.iter().map(Duration::as_secs).collect::<Vec<_>>();
        assert_eq!(
            parse_schedule("").map(secs),
            Ok(DEFAULT_SCHEDULE.iter().map(Duration::as_secs).collect())
        );
        assert_eq!(parse_schedule("1, 1,2").map(secs), Ok(vec![1, 1, 2]));
        assert_eq!(parse_schedule("86400").map(secs), Ok(vec![86_400]));
        for bad in ["0", "86401", "-5", "5s", "5,,6", "1.5", &["1"; 21].join(",")] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    fn answered(status: u16) -> Attempt {
        Attempt::Answered {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn verdicts() {
        let s = &DEFAULT_SCHEDULE;
        let secs = Duration::from_secs;
        let cases: &[(usize, Attempt, Verdict)] = &[
            (1, answered(200), Verdict::Delivered),
            (3, answered(204), Verdict::Delivered),
            (1, answered(500), Verdict::RetryAfter(secs(5))),
            (2, answered(503), Verdict::RetryAfter(secs(30))),
            (7, answered(502), Verdict::RetryAfter(secs(21600))),
            (8, answered(500), Verdict::Exhausted),
            (1, Attempt::TimedOut, Verdict::RetryAfter(secs(5))),
            (4, Attempt::Unreachable, Verdict::RetryAfter(secs(600))),
            (1, answered(408), Verdict::RetryAfter(secs(5))),
            (1, answered(429), Verdict::RetryAfter(secs(5))),
            (1, answered(400), Verdict::Refused),
            (1, answered(401), Verdict::Refused),
            (1, answered(404), Verdict::Refused),
            (1, answered(410), Verdict::Gone),
            (8, answered(410), Verdict::Gone),
            (1, answered(302), Verdict::Refused),
            (1, answered(101), Verdict::RetryAfter(secs(5))),
            (
                1,
                Attempt::Answered {
                    status: 429,
                    retry_after: Some(secs(90)),
                },
                Verdict::RetryAfter(secs(90)),
            ),
            (
                2,
                Attempt::Answered {
                    status: 503,
                    retry_after: Some(secs(1)),
                },
                Verdict::RetryAfter(secs(30)),
            ),
            (
                1,
                Attempt::Answered {
                    status: 429,
                    retry_after: Some(secs(10 * 86_400)),
                },
                Verdict::RetryAfter(MAX_RETRY_AFTER),
            ),
        ];
        for (attempt, outcome, want) in cases {
            assert_eq!(verdict(*attempt, *outcome, s), *want, "attempt {attempt}, {outcome:?}");
        }
        assert_eq!(
            verdict(1, answered(500), &[]),
            Verdict::Exhausted,
            "no retries configured"
        );
    }

    #[test]
    fn retry_after_values() {
        let now = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        let cases: &[(&str, Option<u64>)] = &[
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(0)),
            ("Sun, 06 Nov 1994 08:51:37 GMT", Some(120)),
            ("Sun, 06 Nov 1994 08:48:37 GMT", Some(0)),
            ("Mon, 07 Nov 1994 08:49:37 GMT", Some(86_400)),
            ("Thu, 01 Mar 1996 00:00:00 GMT", Some(825_638_400 - 784_111_777)),
            ("-5", None),
            ("soon", None),
            ("Sun, 06 Nov 1994 08:49:37 PST", None),
            ("Sun, 32 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 9999999999999999 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 -1:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49 GMT", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                want.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }
}
