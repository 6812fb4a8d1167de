//! Container probes (startup, liveness, readiness): exec via the runtime, httpGet,
//! tcpSocket and grpc (see [`grpc`]) against the pod IP, with the probe's timing and thresholds.
//!
//! Owns: running one probe and the per-probe counters. May call: the container runtime
//! (exec) and the pod network (TCP).

use crate::agent::runtime::ContainerRuntime;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

/// Counters and schedule of one probe of one container run.
#[derive(Debug, Clone)]
pub struct ProbeState {
    pub kind: Kind,
    pub probe: Probe,
    next: Instant,
    successes: i32,
    failures: i32,
    /// Latest verdict after thresholds: `Some(true)` passed, `Some(false)` failed.
    pub verdict: Option<bool>,
}

impl ProbeState {
    /// A probe of a container that started at `started`.
    pub fn new(kind: Kind, probe: Probe, started: Instant) -> Self {
        let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
        ProbeState {
            kind,
            probe,
            next: started + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            verdict: None,
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub fn next(&self) -> Instant {
        self.next
    }

    /// Skips this period (the probe is not eligible yet).
    pub fn defer(&mut self, now: Instant) {
        self.next = now + self.period();
    }

    fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }

    /// Records one result; returns the verdict when a threshold was crossed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<bool> {
        self.next = now + self.period();
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                self.verdict = Some(true);
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                self.verdict = Some(false);
            }
        }
        self.verdict
    }
}

/// The probes a container declares.
pub fn probes_of(c: &Container, started: Instant) -> Vec<ProbeState> {
    [
        (Kind::Startup, &c.startup_probe),
        (Kind::Liveness, &c.liveness_probe),
        (Kind::Readiness, &c.readiness_probe),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.clone().map(|p| ProbeState::new(k, p, started)))
    .collect()
}

fn port_of(c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("bad port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name}")),
    }
}

/// Runs `probe` once against container `id` (pod IP `ip`); `Ok(())` is success.
pub async fn run(
    rt: &dyn ContainerRuntime,
    c: &Container,
    id: &str,
    ip: IpAddr,
    probe: &Probe,
) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let out = rt
            .exec(id, &cmd, timeout)
            .await
            .map_err(|e| e.to_string())?;
        return if out.exit_code == 0 {
            Ok(())
        } else {
            Err(format!(
                "exit code {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.output).trim()
            ))
        };
    }
    if let Some(h) = &probe.http_get {
        if h.scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
        {
            return Err("https probes are not supported yet".into());
        }
        let host: IpAddr = match h.host.as_deref().filter(|s| !s.is_empty()) {
            Some(hst) => hst.parse().map_err(|_| format!("bad probe host {hst}"))?,
            None => ip,
        };
        let addr = SocketAddr::new(host, port_of(c, &h.port)?);
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nConnection: close\r\n"
        );
        for hd in h.http_headers.iter().flatten() {
            req.push_str(&format!("{}: {}\r\n", hd.name, hd.value));
        }
        req.push_str("\r\n");
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 64];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&buf[..n]).into_owned();
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad http response {line:?}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        return tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| Err("probe timed out".into()));
    }
    if let Some(t) = &probe.tcp_socket {
        let addr = SocketAddr::new(ip, port_of(c, &t.port)?);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err("probe timed out".into()),
        };
    }
    if let Some(g) = &probe.grpc {
        let port = u16::try_from(g.port).map_err(|_| format!("bad port {}", g.port))?;
        let service = g.service.clone().unwrap_or_default();
        return grpc::check(SocketAddr::new(ip, port), &service, timeout).await;
    }
    Err("probe has no exec, httpGet, tcpSocket or grpc action".into())
}

mod grpc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_the_verdict() {
        let probe: Probe = serde_json::from_value(serde_json::json!({"failureThreshold": 2, "successThreshold": 2, "periodSeconds": 5, "initialDelaySeconds": 3})).unwrap();
        let t0 = Instant::now();
        let mut s = ProbeState::new(Kind::Liveness, probe, t0);
        assert!(!s.due(t0));
        assert!(s.due(t0 + Duration::from_secs(3)));
        assert_eq!(s.record(false, t0), None);
        assert_eq!(s.record(false, t0), Some(false));
        assert_eq!(s.record(true, t0), Some(false), "one success is not enough");
        assert_eq!(s.record(true, t0), Some(true));
        assert_eq!(s.next(), t0 + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn tcp_and_http_probes_hit_the_pod_ip() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap();
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthy ");
                let status = if ok { "200 OK" } else { "500 Oops" };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let rt = crate::agent::runtime::FakeRuntime::new();
        let c: Container = serde_json::from_value(
            serde_json::json!({"name": "c", "ports": [{"name": "web", "containerPort": port}]}),
        )
        .unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let good: Probe = serde_json::from_value(
            serde_json::json!({"httpGet": {"path": "/healthy", "port": "web"}}),
        )
        .unwrap();
        assert!(run(&rt, &c, "id", ip, &good).await.is_ok());
        let bad: Probe =
            serde_json::from_value(serde_json::json!({"httpGet": {"path": "/x", "port": port}}))
                .unwrap();
        assert!(
            run(&rt, &c, "id", ip, &bad)
                .await
                .unwrap_err()
                .contains("500")
        );
        let tcp: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": port}})).unwrap();
        assert!(run(&rt, &c, "id", ip, &tcp).await.is_ok());
    }
}
