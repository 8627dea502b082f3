//! Time and run ids without a date library: milliseconds since the epoch,
//! and UTC timestamps for people.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// (year, month, day) for a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (y, mo, d, rem / 3600, (rem / 60) % 60, rem % 60)
}

/// "2026-11-21T05:27:25Z"
pub fn rfc3339(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A new run id: sortable by time, unique enough across processes:
/// "20261121-052725-3fa9".
pub fn new_run_id() -> String {
    let ms = now_ms();
    let (y, mo, d, h, mi, s) = parts(ms);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = (nanos as u64) ^ ((std::process::id() as u64) << 16) ^ (ms as u64).rotate_left(7);
    let suffix = (mix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16;
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{suffix:04x}")
}

/// Minutes after local midnight at `ms` (the machine's time zone, `TZ`).
pub fn local_minute(ms: i64) -> u32 {
    let t = (ms / 1000) as libc::time_t;
    // SAFETY: zeroed is a valid `tm` (integers and a null pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `t` and writes only into `tm`, which we own.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return ((ms / 60_000).rem_euclid(1440)) as u32;
    }
    (tm.tm_hour * 60 + tm.tm_min) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_238_845_000), "2026-11-21T05:27:25Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn run_ids_are_valid_ref_parts() {
        let id = new_run_id();
        assert_eq!(id.len(), 20, "{id}");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c.is_ascii_hexdigit()));
    }
}
