//! RFC 3339 timestamps, as Keystone writes them (`2026-11-28T16:09:51.000000Z`) and as
//! Kubernetes reads them (`2026-11-28T16:09:51Z`), without pulling in a date-time crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a timestamp could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid RFC 3339 timestamp {0:?}")]
pub struct TimestampError(String);

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into a [`SystemTime`].
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, TimestampError> {
    let err = || TimestampError(s.chars().take(64).collect());
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
        let part = s.get(range).ok_or_else(err)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        part.parse::<i64>().map_err(|_| err())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(err());
    }
    if second > 60 {
        return Err(err());
    }
    let mut rest = &s[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let mut n: u64 = 0;
        for (i, c) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                n = n * 10 + u64::from(c - b'0');
            }
        }
        for _ in digits..9 {
            n *= 10;
        }
        nanos = u32::try_from(n).map_err(|_| err())?;
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if !rest.is_ascii() || rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return Err(err());
            }
            let h: i64 = rest[1..3].parse().map_err(|_| err())?;
            let m: i64 = rest[4..6].parse().map_err(|_| err())?;
            let sign = if rb[0] == b'-' { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).map_err(|_| err())?;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Formats a [`SystemTime`] as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC), the form that
/// Kubernetes' `metav1.Time` writes.
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's algorithms (public domain), proleptic Gregorian calendar.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_timestamps_parse() {
        let t = parse_rfc3339("2026-11-28T16:09:51.000000Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_882_191
        );
        assert_eq!(format_rfc3339(t), "2026-11-28T16:09:51Z");
    }

    #[test]
    fn offsets_and_fractions() {
        let a = parse_rfc3339("2026-11-28T18:09:51.5+02:00").unwrap();
        let b = parse_rfc3339("2026-11-28T16:09:51.500Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), UNIX_EPOCH);
        assert_eq!(
            format_rfc3339(parse_rfc3339("2000-02-29T23:59:59Z").unwrap()),
            "2000-02-29T23:59:59Z"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in [
            "",
            "2026",
            "2026-13-01T00:00:00Z",
            "2026-11-28T16:09:51",
            "x026-11-28T16:09:51Z",
            "2026-11-28T16:09:51.Z",
            "2026-11-28T16:09:51+0200",
            "é026-11-28T16:09:51Z",
        ] {
            assert!(parse_rfc3339(s).is_err(), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..10_000_000_000) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse_rfc3339(&format_rfc3339(t)).unwrap(), t);
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
