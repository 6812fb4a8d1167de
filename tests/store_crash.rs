//! Crash safety of the real binary: `k3rs server` is SIGKILLed while clients stream writes
//! through the Kubernetes API, then restarted on the same data dir. Every acknowledged write
//! must be there afterwards, and a write that was in flight is either fully there or absent.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::Server;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use rand::Rng;

const WRITERS: usize = 4;

fn config_map(name: &str, value: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    // Several keys: a half-applied write would show some of them missing or stale.
    cm.data = Some(
        ["a", "b", "c"]
            .iter()
            .map(|k| (k.to_string(), format!("{k}-{value}")))
            .collect(),
    );
    cm
}

#[derive(Default)]
struct Record {
    /// name -> value, for creates the server acknowledged.
    acked: BTreeMap<String, String>,
    /// name -> value, for creates sent but not acknowledged (in flight at the kill).
    unacked: BTreeMap<String, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(dir.path());
    let mut client = server.start().await;
    let record = Arc::new(Mutex::new(Record::default()));

    for round in 0..3 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
            let record = record.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("r{round}-w{w}-{i}");
                    let value = format!("{round}.{w}.{i}");
                    record
                        .lock()
                        .unwrap()
                        .unacked
                        .insert(name.clone(), value.clone());
                    match api
                        .create(&PostParams::default(), &config_map(&name, &value))
                        .await
                    {
                        Ok(_) => {
                            let mut r = record.lock().unwrap();
                            r.unacked.remove(&name);
                            r.acked.insert(name, value);
                        }
                        // The server died: this write stays "maybe applied".
                        Err(_) => break,
                    }
                }
            }));
        }
        // Kill at a random point, but only once this round has acknowledged something.
        let kill_after = Duration::from_millis(rand::rng().random_range(300..1500));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(20);
        loop {
            let n = record
                .lock()
                .unwrap()
                .acked
                .keys()
                .filter(|k| k.starts_with(&format!("r{round}-")))
                .count();
            if n > 0 && started.elapsed() >= kill_after {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no write acknowledged: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.sigkill();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }

        client = server.start().await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let present: BTreeMap<String, ConfigMap> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|cm| (cm.metadata.name.clone().unwrap(), cm))
            .collect();
        let mut r = record.lock().unwrap();
        for (name, value) in &r.acked {
            let cm = present
                .get(name)
                .unwrap_or_else(|| panic!("round {round}: acknowledged {name} lost"));
            assert_eq!(cm.data, config_map(name, value).data, "{name}");
        }
        // In-flight writes: all or nothing. Once observed, they count as acknowledged.
        let unacked = std::mem::take(&mut r.unacked);
        for (name, value) in unacked {
            if let Some(cm) = present.get(&name) {
                assert_eq!(cm.data, config_map(&name, &value).data, "{name}");
                r.acked.insert(name, value);
            }
        }
        // Nothing the clients never sent appears.
        for name in present.keys().filter(|n| n.starts_with('r')) {
            assert!(r.acked.contains_key(name), "unexpected {name}");
        }
        eprintln!(
            "round {round}: killed after {:?}, {} acknowledged in total",
            kill_after,
            r.acked.len()
        );
    }
}
