//! Cron expressions for `[[schedule]]`, in UTC: `minute hour day-of-month
//! month day-of-week` (five fields), or six with seconds first. Each field
//! is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a list of
//! those (`1,15,30-40/5`); months and weekdays may be named (`jan`, `mon`);
//! Sunday is 0 or 7. As in Vixie cron, when both day fields are restricted
//! a day matches if either does. Pure: no clock is read here.

/// A parsed expression: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month and day-of-week fields were both restricted.
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        let (sec, rest) = match parts.len() {
            5 => ("0", &parts[..]),
            6 => (parts[0], &parts[1..]),
            n => {
                return Err(format!(
                    "a cron expression has 5 fields (minute hour day month weekday), or 6 with seconds first; {expr:?} has {n}"
                ))
            }
        };
        let f = |name, min, max, names| Field {
            name,
            min,
            max,
            names,
        };
        let days_field = rest[2];
        let weekdays_field = rest[4];
        let mut weekdays = field(weekdays_field, &f("weekday", 0, 7, &WEEKDAYS))?;
        // Sunday is 0 or 7.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            seconds: field(sec, &f("second", 0, 59, &[]))?,
            minutes: field(rest[0], &f("minute", 0, 59, &[]))?,
            hours: field(rest[1], &f("hour", 0, 23, &[]))?,
            days: field(days_field, &f("day of month", 1, 31, &[]))?,
            months: field(rest[3], &f("month", 1, 12, &MONTHS))?,
            weekdays,
            either_day: !days_field.starts_with('*') && !weekdays_field.starts_with('*'),
        })
    }

    /// The first time after `t` (seconds since the epoch, UTC) that it
    /// names; None if it names none in the next eight years (`30 2 31 2 *`).
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let mut t = t + 1;
        let limit = t + 8 * 366 * 86_400;
        while t < limit {
            let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
            let (_, month, day) = civil(days);
            let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if !self.day_matches(month, day, weekday) {
                t = (days + 1) * 86_400;
                continue;
            }
            let (h, m, s) = (
                (secs / 3600) as u32,
                (secs / 60 % 60) as u32,
                (secs % 60) as u32,
            );
            if !has(self.hours, h) {
                t = days * 86_400 + (h as i64 + 1) * 3600;
                continue;
            }
            if !has(self.minutes, m) {
                t = days * 86_400 + h as i64 * 3600 + (m as i64 + 1) * 60;
                continue;
            }
            if !has(self.seconds, s) {
                t += 1;
                continue;
            }
            return Some(t);
        }
        None
    }

    fn day_matches(&self, month: u32, day: u32, weekday: u32) -> bool {
        if !has(self.months, month) {
            return false;
        }
        let (by_day, by_weekday) = (has(self.days, day), has(self.weekdays, weekday));
        if self.either_day {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        }
    }
}

fn has(set: u64, v: u32) -> bool {
    set & (1 << v) != 0
}

/// One field as a bit set of its allowed values.
fn field(text: &str, f: &Field) -> Result<u64, String> {
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0 && *s <= f.max)
                    .ok_or_else(|| {
                        let max = f.max;
                        format!(
                            "{}: the step in {part:?} is not a number from 1 to {max}",
                            f.name
                        )
                    })?;
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = match range {
            "*" => (f.min, f.max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, f)?, value(b, f)?),
                // `5/15`: from 5 to the end, every 15.
                None if step.is_some() => (value(r, f)?, f.max),
                None => {
                    let v = value(r, f)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("{}: the range {range:?} runs backwards", f.name));
        }
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step.unwrap_or(1);
        }
    }
    Ok(set)
}

fn value(text: &str, f: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    let named = f.names.iter().position(|n| *n == lower);
    let v = match named {
        // Names start at the field's first value: `jan` is 1, `sun` is 0.
        Some(i) => i as u32 + f.min,
        None => text
            .parse()
            .map_err(|_| format!("{}: {text:?} is not a number (or a name)", f.name))?,
    };
    if v < f.min || v > f.max {
        return Err(format!(
            "{}: {v} is out of range ({}-{})",
            f.name, f.min, f.max
        ));
    }
    Ok(v)
}

/// Year, month (1-12) and day (1-31) of a day number since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD HH:MM:SS UTC`, for people.
pub fn utc(t: i64) -> String {
    let (y, mo, d) = civil(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch of a UTC time, by the inverse of `civil`.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        let mut days = 0i64;
        // Count forward from the epoch: slow but obviously right.
        while civil(days) != (y, mo, d) {
            days += if civil(days).0 < y - 1 { 365 } else { 1 };
        }
        days * 86_400 + h * 3600 + mi * 60 + s
    }

    fn next(expr: &str, from: i64) -> String {
        utc(Cron::parse(expr).unwrap().next_after(from).unwrap())
    }

    #[test]
    fn next_times_are_found_across_days_months_and_leap_years() {
        let t = at(2026, 12, 5, 10, 2, 30);
        assert_eq!(utc(t), "2026-12-05 10:02:30 UTC");
        assert_eq!(next("* * * * *", t), "2026-12-05 10:03:00 UTC");
        assert_eq!(next("0 3 * * 1-5", t), "2026-12-07 03:00:00 UTC"); // Saturday -> Monday
        assert_eq!(next("*/15 * * * *", t), "2026-12-05 10:15:00 UTC");
        assert_eq!(next("30 2 1 jan *", t), "2027-01-01 02:30:00 UTC");
        assert_eq!(next("0 0 29 feb *", t), "2028-02-29 00:00:00 UTC");
        assert_eq!(next("0 12 * * sun", t), "2026-12-06 12:00:00 UTC");
        assert_eq!(next("0 12 * * 7", t), "2026-12-06 12:00:00 UTC");
        assert_eq!(next("*/2 * * * * *", t), "2026-12-05 10:02:32 UTC");
        // `5/1` is 5 and every minute after it; `5/20` is 5, 25 and 45.
        assert_eq!(next("5/1 * * * *", t), "2026-12-05 10:05:00 UTC");
        let later = at(2026, 12, 5, 10, 26, 0);
        assert_eq!(next("5/20 * * * *", later), "2026-12-05 10:45:00 UTC");
        assert_eq!(
            next("0 0 31 * *", at(2026, 4, 1, 0, 0, 0)),
            "2026-05-31 00:00:00 UTC"
        );
        // Both day fields restricted: either matches (the 13th, or a Friday).
        assert_eq!(next("0 9 13 * fri", t), "2026-12-11 09:00:00 UTC");
        // It never names a time: said, not looped on forever.
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(t), None);
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        for (expr, says) in [
            ("* * * *", "has 4"),
            ("60 * * * *", "minute: 60 is out of range (0-59)"),
            ("* 24 * * *", "hour: 24 is out of range"),
            ("* * 0 * *", "day of month: 0 is out of range (1-31)"),
            ("* * * 13 *", "month: 13 is out of range"),
            ("* * * * 8", "weekday: 8 is out of range"),
            (
                "*/0 * * * *",
                "minute: the step in \"*/0\" is not a number from 1 to 59",
            ),
            ("1-5/4294967295 * * * *", "is not a number from 1 to 59"),
            ("5-1 * * * *", "the range \"5-1\" runs backwards"),
            ("* * * smarch *", "month: \"smarch\" is not a number"),
        ] {
            let err = Cron::parse(expr).unwrap_err();
            assert!(err.contains(says), "{expr}: {err}");
        }
    }
}
