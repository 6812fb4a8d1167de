//! What the benchmark harnesses share: a kube client for a server they started, once it
//! answers.

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};
use std::path::Path;
use std::time::{Duration, Instant};

/// A client from `kubeconfig` once the server it names serves the `default` namespace
/// (the kubeconfig is written before the API answers); gives up after 60 s.
pub async fn connect(kubeconfig: &Path) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "server did not start");
        if let Ok(kc) = kube::config::Kubeconfig::read_from(kubeconfig) {
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            let client = Client::try_from(cfg)?;
            if Api::<Namespace>::all(client.clone())
                .get_opt("default")
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return Ok(client);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
