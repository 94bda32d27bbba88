//! Formats nanoseconds since the Unix epoch the way the replica prints `Time` in its error
//! messages (chrono's UTC display): `2025-05-01 23:55:18.005285297 UTC`, with the fraction
//! omitted when zero and shortened to 3 or 6 digits when exact.

pub(crate) fn format_nanos(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let fraction = if frac == 0 {
        String::new()
    } else if frac.is_multiple_of(1_000_000) {
        format!(".{:03}", frac / 1_000_000)
    } else if frac.is_multiple_of(1_000) {
        format!(".{:06}", frac / 1_000)
    } else {
        format!(".{frac:09}")
    };
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{fraction} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::format_nanos;

    #[test]
    fn formats_like_the_replica() {
        assert_eq!(format_nanos(0), "1970-01-01 00:00:00 UTC");
        // 2025-05-01T23:55:18.005285297Z
        assert_eq!(
            format_nanos(1_746_143_718_005_285_297),
            "2025-05-01 23:55:18.005285297 UTC"
        );
        assert_eq!(
            format_nanos(1_746_103_080_000_000_000),
            "2025-05-01 12:38:00 UTC"
        );
        assert_eq!(
            format_nanos(1_709_251_199_500_000_000),
            "2024-02-29 23:59:59.500 UTC"
        );
    }
}
