//! Numbers as people and JSON read them: byte counts in decimal units, durations in seconds
//! rounded to the millisecond. One place, so every report and event says them alike.

use std::time::Duration;

/// `6.6 MB`, `512 B`: decimal units (as `du --si` and Docker print them), one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Seconds, rounded to the millisecond: what JSON events and reports carry.
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// [`secs`] for serde's `serialize_with`.
pub fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(secs(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_in_decimal_units_with_one_decimal() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_345), "12.3 kB");
        assert_eq!(human_bytes(6_600_000), "6.6 MB");
        assert_eq!(human_bytes(3_200_000_000), "3.2 GB");
        assert_eq!(human_bytes(5_000_000_000_000_000), "5000.0 TB");
    }

    #[test]
    fn seconds_are_rounded_to_the_millisecond() {
        assert_eq!(secs(Duration::from_micros(1_234_567)), 1.235);
        assert_eq!(secs(Duration::ZERO), 0.0);
    }
}
