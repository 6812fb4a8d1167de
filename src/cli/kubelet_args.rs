//! Kubelet-style flags of `k3rs server` and `k3rs agent` for node-pressure eviction and
//! image GC (`--eviction-hard`, `--image-gc-high-threshold`, …), plus k3s's
//! `--kubelet-arg key=value` spelling of the same settings.
//!
//! Owns: turning those flags into [`EvictionConfig`]. May call: the eviction parsers.

use crate::agent::eviction::{
    EvictionConfig, default_hard, parse_eviction_hard, parse_go_duration,
};
use crate::agent::image_gc::ImageGcPolicy;
use anyhow::{Context, bail};
use clap::Args;

/// Eviction and image GC flags (kubelet names and defaults).
#[derive(Debug, Clone, Args)]
pub struct KubeletArgs {
    /// Hard eviction thresholds, e.g. `memory.available<100Mi,nodefs.available<10%`
    /// (default: the kubelet's; signals left out of a given list are disabled).
    #[arg(long, env = "K3RS_EVICTION_HARD")]
    pub eviction_hard: Option<String>,
    /// How long a pressure condition stays after its threshold was last met (Go duration).
    #[arg(long, default_value = "5m")]
    pub eviction_pressure_transition_period: String,
    /// How often eviction signals are read (Go duration).
    #[arg(long, default_value = "10s")]
    pub eviction_monitoring_interval: String,
    /// Image filesystem usage percent at which image GC runs (100 disables it).
    #[arg(long, env = "K3RS_IMAGE_GC_HIGH_THRESHOLD", default_value_t = 85)]
    pub image_gc_high_threshold: u8,
    /// Image filesystem usage percent image GC frees down to.
    #[arg(long, default_value_t = 80)]
    pub image_gc_low_threshold: u8,
    /// Minimum age of an unused image before image GC may delete it (Go duration).
    #[arg(long, default_value = "2m")]
    pub minimum_image_ttl_duration: String,
    /// How often image GC checks the thresholds (Go duration).
    #[arg(long, default_value = "5m")]
    pub image_gc_period: String,
    /// k3s-style kubelet arguments `key=value`; the keys above are honoured (e.g.
    /// `eviction-hard=memory.available<200Mi`), others are ignored with a warning.
    #[arg(long = "kubelet-arg")]
    pub kubelet_args: Vec<String>,
}

impl KubeletArgs {
    /// The eviction configuration; `--kubelet-arg` entries override the flags.
    ///
    /// # Errors
    /// A threshold, percentage or duration that does not parse or validate.
    pub fn eviction_config(&self) -> anyhow::Result<EvictionConfig> {
        let mut a = self.clone();
        for kv in &self.kubelet_args {
            let kv = kv.trim_start_matches("--");
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--kubelet-arg {kv:?}: expected key=value");
            };
            let pct = |v: &str| {
                v.parse::<u8>()
                    .with_context(|| format!("--kubelet-arg {k}: {v:?} is not a percentage"))
            };
            match k {
                "eviction-hard" => a.eviction_hard = Some(v.to_string()),
                "eviction-pressure-transition-period" => {
                    a.eviction_pressure_transition_period = v.to_string()
                }
                "image-gc-high-threshold" => a.image_gc_high_threshold = pct(v)?,
                "image-gc-low-threshold" => a.image_gc_low_threshold = pct(v)?,
                "minimum-image-ttl-duration" => a.minimum_image_ttl_duration = v.to_string(),
                other => tracing::warn!(arg = other, "unsupported --kubelet-arg ignored"),
            }
        }
        let hard = match &a.eviction_hard {
            Some(s) => parse_eviction_hard(s).context("--eviction-hard")?,
            None => default_hard(),
        };
        let duration =
            |flag: &str, v: &str| parse_go_duration(v).with_context(|| format!("--{flag}"));
        let image_gc = ImageGcPolicy {
            high_threshold_percent: a.image_gc_high_threshold,
            low_threshold_percent: a.image_gc_low_threshold,
            min_age: duration("minimum-image-ttl-duration", &a.minimum_image_ttl_duration)?,
            period: duration("image-gc-period", &a.image_gc_period)?,
        };
        image_gc.validate().map_err(anyhow::Error::msg)?;
        let monitoring_interval = duration(
            "eviction-monitoring-interval",
            &a.eviction_monitoring_interval,
        )?;
        if monitoring_interval.is_zero() || image_gc.period.is_zero() {
            bail!("--eviction-monitoring-interval and --image-gc-period must be positive");
        }
        Ok(EvictionConfig {
            hard,
            monitoring_interval,
            pressure_transition_period: duration(
                "eviction-pressure-transition-period",
                &a.eviction_pressure_transition_period,
            )?,
            image_gc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        k: KubeletArgs,
    }

    #[test]
    fn defaults_are_the_kubelets() {
        use clap::{CommandFactory, FromArgMatches};
        // Without the env fallbacks (cargo sets them for the test servers).
        let cmd = T::command()
            .mut_arg("eviction_hard", |a| a.env(None))
            .mut_arg("image_gc_high_threshold", |a| a.env(None));
        let m = cmd.get_matches_from(["t"]);
        let c = T::from_arg_matches(&m)
            .unwrap()
            .k
            .eviction_config()
            .unwrap();
        assert_eq!(c, EvictionConfig::default());
    }

    #[test]
    fn kubelet_arg_spelling_sets_eviction_hard_and_gc_thresholds() {
        let c = T::parse_from([
            "t",
            "--kubelet-arg=eviction-hard=memory.available<200Mi",
            "--kubelet-arg",
            "image-gc-high-threshold=90",
            "--kubelet-arg=max-pods=10",
        ])
        .k
        .eviction_config()
        .unwrap();
        assert_eq!(c.hard.len(), 1);
        assert_eq!(c.hard[0].quantity(0), 200 * 1024 * 1024);
        assert_eq!(c.image_gc.high_threshold_percent, 90);
    }

    #[test]
    fn invalid_settings_are_errors() {
        let bad = |args: &[&str]| {
            let mut v = vec!["t"];
            v.extend_from_slice(args);
            T::parse_from(v).k.eviction_config().is_err()
        };
        assert!(bad(&["--eviction-hard", "memory.available>1"]));
        assert!(bad(&[
            "--image-gc-high-threshold",
            "50",
            "--image-gc-low-threshold",
            "60"
        ]));
        assert!(bad(&["--eviction-monitoring-interval", "0"]));
        assert!(bad(&["--minimum-image-ttl-duration", "soon"]));
    }
}
