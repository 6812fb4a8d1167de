//! Cron schedules in the standard five-field format Kubernetes CronJobs use (minute, hour,
//! day of month, month, day of week; names, ranges, steps, lists and the `@hourly`-style
//! descriptors), evaluated in any time zone.
//!
//! Owns: parsing and "next time after" — nothing else. Used by the CronJob controller and the
//! scheduled store snapshots. May call: `jiff` only.
//!
//! Semantics follow the parser CronJobs have always used upstream: when both day fields are
//! restricted a day matches if either matches, otherwise both must (`*` and `?` count as
//! unrestricted unless stepped); `N/step` means `N-max/step`; `TZ=`/`CRON_TZ=` prefixes are
//! refused because Kubernetes wants `spec.timeZone` instead.

use jiff::Zoned;
use jiff::civil::Date;
use thiserror::Error;

/// A cron expression that cannot be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CronError {
    #[error("expected exactly 5 fields, found {found}: {expr}")]
    FieldCount { found: usize, expr: String },
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    TimeZonePrefix,
    #[error("invalid {field} field {value:?}: {reason}")]
    Field {
        field: &'static str,
        value: String,
        reason: String,
    },
}

/// Bounds and names of one field.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// How far ahead `next_after` looks before concluding a schedule never fires (e.g. `0 0 30 2 *`).
const SEARCH_YEARS: i16 = 5;

/// One parsed field: a bit per allowed value, and whether it was written unrestricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    star: bool,
}

impl Field {
    fn has(&self, v: u32) -> bool {
        self.bits & (1u64 << v) != 0
    }
}

/// A parsed cron schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

impl Schedule {
    /// Parse a five-field expression or a descriptor (`@yearly`, `@annually`, `@monthly`,
    /// `@weekly`, `@daily`, `@midnight`, `@hourly`).
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        let expr = expr.trim();
        if expr.starts_with("TZ=") || expr.starts_with("CRON_TZ=") {
            return Err(CronError::TimeZonePrefix);
        }
        if let Some(descriptor) = expr.strip_prefix('@') {
            let fields = match descriptor.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return Err(CronError::Descriptor(expr.to_string())),
            };
            return Schedule::parse(fields);
        }
        let parts: Vec<&str> = expr.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = parts.as_slice() else {
            return Err(CronError::FieldCount {
                found: parts.len(),
                expr: expr.to_string(),
            });
        };
        Ok(Schedule {
            minute: parse_field(minute, &MINUTE)?,
            hour: parse_field(hour, &HOUR)?,
            dom: parse_field(dom, &DOM)?,
            month: parse_field(month, &MONTH)?,
            dow: parse_field(dow, &DOW)?,
        })
    }

    /// The first activation strictly after `after`, in `after`'s time zone; `None` when the
    /// schedule cannot fire within the next few years (for example February 30th).
    ///
    /// Matching is done on wall-clock time. A time skipped by a daylight-saving jump fires at
    /// the shifted instant; a time that occurs twice fires once (at its first occurrence).
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone().clone();
        let start = after.datetime();
        let mut date = start.date();
        let mut hour = start.hour() as u32;
        // Next whole minute after `after`.
        let mut minute = start.minute() as u32 + 1;
        let last_year = start.year().saturating_add(SEARCH_YEARS);
        while date.year() <= last_year {
            if !self.month.has(date.month() as u32) {
                date = first_of_next_month(date)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = date.tomorrow().ok()?;
                (hour, minute) = (0, 0);
                continue;
            }
            let Some((h, m)) = self.time_on_or_after(hour, minute) else {
                date = date.tomorrow().ok()?;
                (hour, minute) = (0, 0);
                continue;
            };
            let civil = date.at(h as i8, m as i8, 0, 0);
            let zoned = tz.to_zoned(civil).ok()?;
            if zoned > *after {
                return Some(zoned);
            }
            // A repeated wall-clock time mapped before `after`: keep searching past it.
            (hour, minute) = (h, m + 1);
        }
        None
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.dom.has(date.day() as u32);
        let dow = self.dow.has(date.weekday().to_sunday_zero_offset() as u32);
        if self.dom.star || self.dow.star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first (hour, minute) of the schedule at or after the given wall-clock time of a day.
    fn time_on_or_after(&self, hour: u32, minute: u32) -> Option<(u32, u32)> {
        let (mut h, mut m) = (hour, minute);
        while h <= 23 {
            if self.hour.has(h)
                && let Some(m) = (m..=59).find(|m| self.minute.has(*m))
            {
                return Some((h, m));
            }
            (h, m) = (h + 1, 0);
        }
        None
    }
}

fn first_of_next_month(date: Date) -> Option<Date> {
    date.last_of_month().tomorrow().ok()
}

/// Parse one field: a comma list of `*`, `?`, `N`, `A-B`, each with an optional `/STEP`.
fn parse_field(text: &str, spec: &FieldSpec) -> Result<Field, CronError> {
    let bad = |reason: String| CronError::Field {
        field: spec.name,
        value: text.to_string(),
        reason,
    };
    let mut field = Field {
        bits: 0,
        star: false,
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| bad(format!("step {step:?} is not a number")))?;
                if step == 0 {
                    return Err(bad("step must be positive".into()));
                }
                (range, Some(step))
            }
            None => (part, None),
        };
        let (low, high, star) = if range == "*" || range == "?" {
            (spec.min, spec.max, step.is_none_or(|s| s == 1))
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, spec).map_err(bad)?,
                value(b, spec).map_err(bad)?,
                false,
            )
        } else {
            let v = value(range, spec).map_err(bad)?;
            // `N/step` runs from N to the end of the range.
            (v, if step.is_some() { spec.max } else { v }, false)
        };
        if low > high {
            return Err(bad(format!(
                "beginning of range ({low}) beyond end ({high})"
            )));
        }
        let step = step.unwrap_or(1);
        let mut v = low;
        while v <= high {
            field.bits |= 1u64 << v;
            v += step;
        }
        field.star |= star;
    }
    Ok(field)
}

/// A single value: a number within bounds or (month, day of week) a three-letter name.
fn value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = spec.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + spec.min);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v < spec.min || v > spec.max {
        return Err(format!("{v} out of range [{}, {}]", spec.min, spec.max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;
    use jiff::tz::TimeZone;

    fn at(s: &str, tz: &str) -> Zoned {
        let dt: DateTime = s.parse().unwrap();
        TimeZone::get(tz).unwrap().to_zoned(dt).unwrap()
    }

    fn next(expr: &str, from: &str, tz: &str) -> String {
        let z = Schedule::parse(expr)
            .unwrap()
            .next_after(&at(from, tz))
            .unwrap();
        z.datetime().to_string()
    }

    #[test]
    fn every_minute_fires_on_the_next_whole_minute() {
        assert_eq!(
            next("* * * * *", "2026-01-01T10:00:30", "UTC"),
            "2026-01-01T10:01:00"
        );
        assert_eq!(
            next("* * * * *", "2026-01-01T10:00:00", "UTC"),
            "2026-01-01T10:01:00"
        );
    }

    #[test]
    fn steps_ranges_and_lists_combine() {
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T10:16:00", "UTC"),
            "2026-01-01T10:30:00"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-01-01T10:46:00", "UTC"),
            "2026-01-01T11:05:00"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2026-01-01T13:00:00", "UTC"),
            "2026-01-01T17:00:00"
        );
        assert_eq!(
            next("0 1,3 * * *", "2026-01-01T02:00:00", "UTC"),
            "2026-01-01T03:00:00"
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        // 2026-01-01 is a Thursday.
        assert_eq!(
            next("0 0 * * MON", "2026-01-01T00:00:00", "UTC"),
            "2026-01-05T00:00:00"
        );
        assert_eq!(
            next("0 0 1 Mar *", "2026-01-01T00:00:00", "UTC"),
            "2026-03-01T00:00:00"
        );
    }

    #[test]
    fn restricted_day_fields_match_either_day() {
        // The 15th or any Monday, whichever comes first.
        assert_eq!(
            next("0 0 15 * 1", "2026-01-06T00:00:00", "UTC"),
            "2026-01-12T00:00:00"
        );
        // Day of week unrestricted: only the 15th.
        assert_eq!(
            next("0 0 15 * *", "2026-01-06T00:00:00", "UTC"),
            "2026-01-15T00:00:00"
        );
        // A stepped star is a restriction.
        assert_eq!(
            next("0 0 */10 * 1", "2026-01-06T00:00:00", "UTC"),
            "2026-01-11T00:00:00"
        );
    }

    #[test]
    fn descriptors_expand() {
        assert_eq!(
            next("@hourly", "2026-01-01T10:30:00", "UTC"),
            "2026-01-01T11:00:00"
        );
        assert_eq!(
            next("@weekly", "2026-01-01T10:30:00", "UTC"),
            "2026-01-04T00:00:00"
        );
        assert_eq!(
            next("@yearly", "2026-01-01T10:30:00", "UTC"),
            "2027-01-01T00:00:00"
        );
        assert!(Schedule::parse("@fortnightly").is_err());
    }

    #[test]
    fn leap_day_is_found_years_ahead_and_impossible_dates_give_none() {
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00", "UTC"),
            "2028-02-29T00:00:00"
        );
        let never = Schedule::parse("0 0 30 2 *").unwrap();
        assert!(
            never
                .next_after(&at("2026-01-01T00:00:00", "UTC"))
                .is_none()
        );
    }

    #[test]
    fn schedules_follow_the_wall_clock_of_the_time_zone() {
        let z = Schedule::parse("0 9 * * *")
            .unwrap()
            .next_after(&at("2026-06-01T10:00:00", "America/New_York"))
            .unwrap();
        assert_eq!(z.datetime().to_string(), "2026-06-02T09:00:00");
        assert_eq!(z.timestamp().to_string(), "2026-06-02T13:00:00Z");
    }

    #[test]
    fn daylight_saving_gaps_shift_and_repeats_fire_once() {
        // 2026-03-08 02:30 does not exist in New York; it fires at 03:30 EDT.
        let gap = next("30 2 * * *", "2026-03-08T00:00:00", "America/New_York");
        assert_eq!(gap, "2026-03-08T03:30:00");
        // 2026-11-01 01:30 happens twice; after the first, the next run is the following day.
        let s = Schedule::parse("30 1 * * *").unwrap();
        let first = s
            .next_after(&at("2026-11-01T00:00:00", "America/New_York"))
            .unwrap();
        let second = s.next_after(&first).unwrap();
        assert_eq!(second.datetime().to_string(), "2026-11-02T01:30:00");
    }

    #[test]
    fn bad_expressions_are_refused_with_the_field_named() {
        assert!(matches!(
            Schedule::parse("* * * *"),
            Err(CronError::FieldCount { found: 4, .. })
        ));
        assert_eq!(
            Schedule::parse("TZ=UTC * * * * *"),
            Err(CronError::TimeZonePrefix)
        );
        let e = Schedule::parse("60 * * * *").unwrap_err().to_string();
        assert!(e.contains("minute") && e.contains("out of range"), "{e}");
        assert!(Schedule::parse("*/0 * * * *").is_err());
        assert!(Schedule::parse("5-1 * * * *").is_err());
        assert!(Schedule::parse("* * * * 7").is_err());
        assert!(Schedule::parse("* * * foo *").is_err());
    }
}
