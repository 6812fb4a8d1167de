//! Eviction signals and hard thresholds in the kubelet's syntax
//! (`memory.available<100Mi,nodefs.available<10%`), the kubelet's defaults, and the small
//! formatting helpers the eviction messages need (quantities, Go durations).
//!
//! Owns: parsing and evaluating thresholds (pure). May call: nothing.

use super::EvictionError;
use std::time::Duration;

/// An eviction signal, named as upstream (`memory.available`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Free memory: `MemAvailable` of `/proc/meminfo` (see `signals`).
    MemoryAvailable,
    /// Free bytes of the filesystem holding the agent's data dir.
    NodeFsAvailable,
    /// Free inodes of that filesystem.
    NodeFsInodesFree,
    /// Free bytes of the filesystem holding containerd's root (images, snapshots).
    ImageFsAvailable,
    /// Free inodes of that filesystem.
    ImageFsInodesFree,
    /// Process IDs left: the kernel's limit (`pid_max`, `threads-max`) minus the tasks.
    PidAvailable,
}

/// The node condition a signal drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    MemoryPressure,
    DiskPressure,
    PidPressure,
}

impl Signal {
    /// Every signal, in the order the manager acts on them (memory first, like upstream).
    pub const ALL: [Signal; 6] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::PidAvailable,
    ];

    /// The upstream name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    fn from_name(s: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The resource named in eviction messages (`The node was low on resource: memory.`).
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => "ephemeral-storage",
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }

    /// The node condition this signal sets.
    pub fn condition(self) -> Condition {
        match self {
            Signal::MemoryAvailable => Condition::MemoryPressure,
            Signal::PidAvailable => Condition::PidPressure,
            _ => Condition::DiskPressure,
        }
    }
}

/// A threshold value: an absolute quantity or a percentage of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Bytes (or inodes).
    Quantity(u64),
    /// Fraction of capacity, 0 < p ≤ 1.
    Percentage(f64),
}

/// A hard threshold: the signal is met when `available < value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: Value,
}

impl Threshold {
    /// The threshold as an absolute amount for a resource of `capacity`.
    pub fn quantity(&self, capacity: u64) -> u64 {
        match self.value {
            Value::Quantity(q) => q,
            Value::Percentage(p) => (capacity as f64 * p) as u64,
        }
    }

    /// True when `available` is below the threshold.
    pub fn met(&self, available: u64, capacity: u64) -> bool {
        available < self.quantity(capacity)
    }
}

/// The kubelet's default hard thresholds on Linux.
pub fn default_hard() -> Vec<Threshold> {
    // Strings known to parse; parse_eviction_hard is the single source of the syntax.
    parse_eviction_hard(
        "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%",
    )
    .unwrap_or_default()
}

/// Parses `--eviction-hard` (`signal<value,…`). As upstream, signals not named are not
/// defaulted (a partial list disables the others) and a zero value disables its signal.
///
/// # Errors
/// Bad syntax, an unknown signal, an operator other than `<`, a negative or unparsable
/// value, a percentage above 100%, or a signal given twice.
pub fn parse_eviction_hard(s: &str) -> Result<Vec<Threshold>, EvictionError> {
    let mut out: Vec<Threshold> = Vec::new();
    for stmt in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let bad = || {
            EvictionError::Threshold(format!(
                "invalid eviction threshold syntax {stmt}, expected <signal><operator><value>"
            ))
        };
        let (name, value) = stmt.split_once('<').ok_or_else(bad)?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || value.is_empty() {
            return Err(bad());
        }
        let signal = Signal::from_name(name).ok_or_else(|| {
            EvictionError::Threshold(format!("unsupported eviction signal {name}"))
        })?;
        if out.iter().any(|t| t.signal == signal) {
            return Err(EvictionError::Threshold(format!(
                "found duplicate eviction threshold for signal {name}"
            )));
        }
        let value = if let Some(p) = value.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| {
                EvictionError::Threshold(format!("invalid percentage {value} for {name}"))
            })?;
            if !(0.0..=100.0).contains(&p) {
                return Err(EvictionError::Threshold(format!(
                    "eviction percentage threshold {name} must be between 0% and 100%: {value}"
                )));
            }
            Value::Percentage(p / 100.0)
        } else {
            let q = crate::quantity::parse_quantity(value).ok_or_else(|| {
                EvictionError::Threshold(format!("invalid quantity {value} for {name}"))
            })?;
            if q < 0.0 {
                return Err(EvictionError::Threshold(format!(
                    "eviction threshold {name} must be positive: {value}"
                )));
            }
            Value::Quantity(q.ceil() as u64)
        };
        let zero = match value {
            Value::Quantity(q) => q == 0,
            Value::Percentage(p) => p == 0.0,
        };
        if !zero {
            out.push(Threshold { signal, value });
        }
    }
    Ok(out)
}

/// A byte (or inode) count as Kubernetes prints a binary quantity: the largest power of
/// 1024 that divides it (`100Mi`, `19446664Ki`), else the plain number.
pub fn format_quantity(n: u64) -> String {
    const SUFFIX: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    if n == 0 {
        return "0".into();
    }
    for (i, s) in SUFFIX.iter().enumerate() {
        let unit = 1u64 << (10 * (6 - i));
        if n % unit == 0 {
            return format!("{}{s}", n / unit);
        }
    }
    n.to_string()
}

/// Parses a Go duration (`10s`, `5m`, `1h30m`, `500ms`).
///
/// # Errors
/// Empty input, a missing or unknown unit, or a bad number.
pub fn parse_go_duration(s: &str) -> Result<Duration, EvictionError> {
    let bad = || EvictionError::Threshold(format!("invalid duration {s:?}"));
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let mult = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_hard_parses_quantities_and_percentages() {
        let t = parse_eviction_hard("memory.available<200Mi, nodefs.available<5%").unwrap();
        assert_eq!(
            t,
            vec![
                Threshold {
                    signal: Signal::MemoryAvailable,
                    value: Value::Quantity(200 * 1024 * 1024)
                },
                Threshold {
                    signal: Signal::NodeFsAvailable,
                    value: Value::Percentage(0.05)
                },
            ]
        );
    }

    #[test]
    fn defaults_are_the_kubelets() {
        let d = default_hard();
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].quantity(0), 100 * 1024 * 1024);
        assert_eq!(d[1].quantity(1000), 100);
        assert_eq!(d[3].quantity(1000), 150);
    }

    #[test]
    fn bad_thresholds_are_rejected_with_upstream_wording() {
        let e = parse_eviction_hard("memory.available>1Gi").unwrap_err();
        assert!(
            e.to_string().contains("invalid eviction threshold syntax"),
            "{e}"
        );
        let e = parse_eviction_hard("cpu.available<1").unwrap_err();
        assert!(
            e.to_string()
                .contains("unsupported eviction signal cpu.available"),
            "{e}"
        );
        assert!(parse_eviction_hard("nodefs.available<150%").is_err());
        assert!(parse_eviction_hard("memory.available<-1Mi").is_err());
        assert!(parse_eviction_hard("memory.available<lots").is_err());
        let e = parse_eviction_hard("memory.available<1Mi,memory.available<2Mi").unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    #[test]
    fn zero_thresholds_disable_their_signal() {
        let t = parse_eviction_hard("memory.available<0,nodefs.available<0%").unwrap();
        assert!(t.is_empty());
    }

    #[test]
    fn thresholds_are_met_strictly_below() {
        let t = Threshold {
            signal: Signal::NodeFsAvailable,
            value: Value::Percentage(0.10),
        };
        assert!(t.met(99, 1000));
        assert!(!t.met(100, 1000));
    }

    #[test]
    fn quantities_print_like_kubernetes() {
        assert_eq!(format_quantity(100 * 1024 * 1024), "100Mi");
        assert_eq!(format_quantity(3 * 1024), "3Ki");
        assert_eq!(format_quantity(1000), "1000");
        assert_eq!(format_quantity(0), "0");
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5x").is_err());
    }
}
