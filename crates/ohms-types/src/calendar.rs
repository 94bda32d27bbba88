//! Calendar arithmetic on IC time (nanoseconds since the Unix epoch, UTC): economics resets
//! quotas and splits revenue per calendar month; clients print dates.
//!
//! A month is numbered `year * 12 + (month - 1)`, so months order and subtract as integers.

pub const NANOS_PER_SECOND: u64 = 1_000_000_000;
pub const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SECOND;

/// The month number of a time.
pub fn month_of(nanos: u64) -> u32 {
    let (year, month, _) = civil_from_days((nanos / NANOS_PER_DAY) as i64);
    (year * 12 + (month - 1)) as u32
}

/// The first nanosecond of a month.
pub fn month_start(month: u32) -> u64 {
    let (year, month) = ((month / 12) as i64, (month % 12 + 1) as i64);
    days_from_civil(year, month, 1) as u64 * NANOS_PER_DAY
}

/// `YYYY-MM`.
pub fn month_label(month: u32) -> String {
    format!("{:04}-{:02}", month / 12, month % 12 + 1)
}

/// The day number (days since 1970-01-01) of a time.
pub fn day_of(nanos: u64) -> u32 {
    (nanos / NANOS_PER_DAY) as u32
}

/// `YYYY-MM-DD` of a day number.
pub fn day_label(day: u32) -> String {
    let (year, month, day) = civil_from_days(i64::from(day));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn minute_label(nanos: u64) -> String {
    let secs = nanos / NANOS_PER_SECOND;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60
    )
}

// Howard Hinnant's algorithms (days since 1970-01-01 <-> proleptic Gregorian date).

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_of_known_dates() {
        assert_eq!(month_label(month_of(0)), "1970-01");
        // 2024-02-29T12:00:00Z, a leap day.
        assert_eq!(
            month_label(month_of(1_709_208_000 * NANOS_PER_SECOND)),
            "2024-02"
        );
        // 2026-12-31T23:59:59Z and one second later.
        let last = 1_798_761_599 * NANOS_PER_SECOND;
        assert_eq!(month_label(month_of(last)), "2026-12");
        assert_eq!(month_label(month_of(last + NANOS_PER_SECOND)), "2027-01");
    }

    #[test]
    fn minutes_of_known_times() {
        assert_eq!(minute_label(0), "1970-01-01 00:00 UTC");
        // The IC's genesis, and a leap day.
        assert_eq!(
            minute_label(1_620_666_000 * NANOS_PER_SECOND),
            "2021-05-10 17:00 UTC"
        );
        assert_eq!(
            minute_label(951_782_400 * NANOS_PER_SECOND),
            "2000-02-29 00:00 UTC"
        );
        assert_eq!(
            minute_label(1_798_761_599 * NANOS_PER_SECOND),
            "2026-12-31 23:59 UTC"
        );
    }

    #[test]
    fn month_start_is_the_first_instant_of_the_month() {
        for nanos in [
            1_709_208_000 * NANOS_PER_SECOND,
            1_798_761_599 * NANOS_PER_SECOND,
        ] {
            let month = month_of(nanos);
            assert!(month_start(month) <= nanos);
            assert_eq!(month_of(month_start(month)), month);
            assert_eq!(month_of(month_start(month) - 1), month - 1);
            assert_eq!(month_of(month_start(month + 1)), month + 1);
        }
    }
}
