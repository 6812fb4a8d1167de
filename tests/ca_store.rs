//! The cluster CA kept in the replicated store, sealed with the token (real binary,
//! `--disable-agent`): a server whose CA files were lost gets the same CA back at start.

mod common;

use common::TestServer;
use std::time::{Duration, Instant};

#[test]
fn a_server_that_lost_its_ca_files_recovers_the_same_ca_from_its_datastore() {
    let port = common::process::free_port();
    let mut ts = TestServer::start_in(tempfile::tempdir().unwrap(), port, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ts.log().contains("stored the sealed cluster CA") {
        assert!(
            Instant::now() < deadline,
            "bundle not stored:\n{}",
            ts.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tls = ts.dir.path().join("data/server/tls");
    let ca = std::fs::read_to_string(tls.join("server-ca.crt")).unwrap();
    let sa = std::fs::read_to_string(tls.join("service.key")).unwrap();
    let key = std::fs::read_to_string(tls.join("server-ca.key")).unwrap();
    ts.stop();

    for f in ["server-ca.crt", "server-ca.key", "service.key"] {
        std::fs::remove_file(tls.join(f)).unwrap();
    }
    let dir = std::mem::replace(&mut ts.dir, tempfile::tempdir().unwrap());
    drop(ts);
    let ts = TestServer::start_in(dir, port, &[]);
    let tls = ts.dir.path().join("data/server/tls");
    assert_eq!(
        std::fs::read_to_string(tls.join("server-ca.crt")).unwrap(),
        ca
    );
    assert_eq!(
        std::fs::read_to_string(tls.join("server-ca.key")).unwrap(),
        key
    );
    assert_eq!(
        std::fs::read_to_string(tls.join("service.key")).unwrap(),
        sa
    );
    assert!(
        ts.log()
            .contains("recovered the cluster CA from the datastore")
    );
    // Certificates issued before the loss still verify against the recovered CA.
    ts.ok(common::KUBECTL, &["get", "ns", "kube-system"]);
}
