//! Pure CronJob logic: which scheduled start is due (only the most recent missed one runs, as
//! upstream), job names and the scheduled-timestamp annotation, and history selection.
//!
//! Owns: upstream `pkg/controller/cronjob/utils` semantics. Calls `crate::cron` and `jiff`.

use crate::cron::Schedule;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

/// Upstream warns about more missed starts than this.
pub const TOO_MANY_MISSED: u64 = 100;
/// Annotation with the scheduled time a CronJob's job was created for.
pub const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Scheduled starts in `(earliest, now]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// The latest of them: the only one that runs.
    pub most_recent: Option<jiff::Zoned>,
    /// How many there were (estimated from the schedule's interval above [`TOO_MANY_MISSED`]).
    pub count: u64,
}

/// The scheduled starts after `earliest` up to and including `now` (both in the schedule's
/// time zone). Work is bounded however long ago `earliest` is.
pub fn missed_starts(schedule: &Schedule, earliest: &jiff::Zoned, now: &jiff::Zoned) -> Missed {
    let mut count = 0u64;
    let mut last = None;
    let mut t = schedule.next_after(earliest);
    while let Some(cur) = t.clone() {
        if cur > *now {
            return Missed {
                most_recent: last,
                count,
            };
        }
        count += 1;
        last = Some(cur.clone());
        if count > TOO_MANY_MISSED {
            break;
        }
        t = schedule.next_after(&cur);
    }
    if t.is_none() {
        return Missed {
            most_recent: last,
            count,
        };
    }
    // Too many to walk: estimate the count from the first interval (as upstream reports it)
    // and find the latest start in windows ending at `now`, doubling until one holds a start.
    let first = schedule.next_after(earliest);
    let second = first.as_ref().and_then(|f| schedule.next_after(f));
    if let (Some(a), Some(b)) = (&first, &second) {
        let step = (b.timestamp().as_second() - a.timestamp().as_second()).max(1);
        let elapsed = now.timestamp().as_second() - a.timestamp().as_second();
        count = u64::try_from(elapsed / step + 1)
            .unwrap_or(count)
            .max(count);
    }
    let mut window = jiff::SignedDuration::from_secs(60);
    let floor = last.clone();
    loop {
        let from_ts = now.timestamp() - window;
        let from = from_ts.to_zoned(now.time_zone().clone());
        let from = match &floor {
            Some(f) if *f > from => f.clone(),
            _ => from,
        };
        let mut latest = None;
        let mut t = schedule.next_after(&from);
        let mut steps = 0;
        while let Some(cur) = t {
            if cur > *now || steps > 10_000 {
                break;
            }
            steps += 1;
            t = schedule.next_after(&cur);
            latest = Some(cur);
        }
        if latest.is_some() || from.timestamp() <= floor.as_ref().map_or(from_ts, |f| f.timestamp())
        {
            return Missed {
                most_recent: latest.or(floor),
                count,
            };
        }
        window = window.checked_mul(2).unwrap_or(window);
    }
}

/// `<cronjob>-<scheduled time in unix minutes>`, as upstream names a scheduled job.
pub fn job_name(cronjob: &str, scheduled: &jiff::Zoned) -> String {
    format!(
        "{cronjob}-{}",
        scheduled.timestamp().as_second().div_euclid(60)
    )
}

/// RFC 3339 in the schedule's zone (`Z` for UTC, as Go formats it).
pub fn rfc3339(t: &jiff::Zoned) -> String {
    if t.offset().seconds() == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The jobs to delete so at most `limit` remain: the oldest by start (or creation) time.
pub fn over_limit(mut jobs: Vec<Job>, limit: i32) -> Vec<Job> {
    let keep = usize::try_from(limit.max(0)).unwrap_or(0);
    if jobs.len() <= keep {
        return Vec::new();
    }
    jobs.sort_by_key(|j| {
        let t = j
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .or(j.metadata.creation_timestamp.as_ref())
            .map(|t| t.0);
        (t, j.name_any())
    });
    let n = jobs.len() - keep;
    jobs.truncate(n);
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn at(s: &str) -> jiff::Zoned {
        s.parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned(TimeZone::UTC)
    }

    #[test]
    fn only_the_most_recent_missed_start_is_due() {
        let every_5 = Schedule::parse("*/5 * * * *").unwrap();
        let m = missed_starts(
            &every_5,
            &at("2026-11-25T10:00:00Z"),
            &at("2026-11-25T10:17:30Z"),
        );
        assert_eq!(m.count, 3);
        assert_eq!(m.most_recent, Some(at("2026-11-25T10:15:00Z")));
        let none = missed_starts(
            &every_5,
            &at("2026-11-25T10:15:00Z"),
            &at("2026-11-25T10:17:30Z"),
        );
        assert_eq!((none.count, none.most_recent), (0, None));
    }

    #[test]
    fn a_year_of_missed_minutes_is_counted_without_walking_it() {
        let every_minute = Schedule::parse("* * * * *").unwrap();
        let m = missed_starts(
            &every_minute,
            &at("2025-11-25T10:00:00Z"),
            &at("2026-11-25T10:17:30Z"),
        );
        assert!(m.count > TOO_MANY_MISSED);
        assert_eq!(m.count, 365 * 24 * 60 + 17);
        assert_eq!(m.most_recent, Some(at("2026-11-25T10:17:00Z")));
        let daily = Schedule::parse("30 4 * * *").unwrap();
        let d = missed_starts(
            &daily,
            &at("2020-01-01T00:00:00Z"),
            &at("2026-11-25T03:00:00Z"),
        );
        assert!(d.count > TOO_MANY_MISSED);
        assert_eq!(d.most_recent, Some(at("2026-11-24T04:30:00Z")));
    }

    #[test]
    fn jobs_are_named_after_the_scheduled_minute() {
        let t = at("2026-11-25T10:15:00Z");
        assert_eq!(job_name("backup", &t), "backup-29926695");
        assert_eq!(rfc3339(&t), "2026-11-25T10:15:00Z");
        let berlin = t.with_time_zone(TimeZone::get("Europe/Berlin").unwrap());
        assert_eq!(job_name("backup", &berlin), "backup-29926695");
        assert_eq!(rfc3339(&berlin), "2026-11-25T11:15:00+01:00");
    }

    #[test]
    fn history_keeps_the_newest_jobs() {
        let jobs: Vec<Job> = (0..5)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("j{i}"),
                        "creationTimestamp": format!("2026-11-25T10:0{i}:00Z")},
                    "spec": {"template": {}}
                }))
                .unwrap()
            })
            .collect();
        let gone: Vec<String> = over_limit(jobs.clone(), 3)
            .iter()
            .map(|j| j.name_any())
            .collect();
        assert_eq!(gone, ["j0", "j1"]);
        assert!(over_limit(jobs, 5).is_empty());
    }
}
