//! Shared helpers for the integration tests.

use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::xds::{AdsOptions, ResourceUpdate, ResourceWatch, XdsClient};

/// A bootstrap pointing at `server`, with extra server features.
pub fn bootstrap(server: &TestAdsServer, features: &[&str]) -> Bootstrap {
    let mut features: Vec<serde_json::Value> = features.iter().map(|f| (*f).into()).collect();
    features.push("xds_v3".into());
    let json = serde_json::json!({
        "xds_servers": [{
            "server_uri": server.local_addr().to_string(),
            "channel_creds": [{"type": "insecure"}],
            "server_features": features,
        }],
        "node": {"id": "test-node", "cluster": "test"},
    });
    Bootstrap::from_json(&json.to_string()).expect("valid bootstrap")
}

/// Options with short timers for tests.
pub fn fast_options() -> AdsOptions {
    AdsOptions {
        resource_timeout: Duration::from_millis(300),
        backoff: mesh_core::xds::backoff::BackoffConfig {
            initial: Duration::from_millis(20),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_millis(200),
        },
        ..AdsOptions::default()
    }
}

/// A client with short timers.
pub fn client(server: &TestAdsServer, features: &[&str]) -> XdsClient {
    XdsClient::with_options(&bootstrap(server, features), fast_options())
}

/// Waits (up to 5 s) until the watch satisfies `pred`.
pub async fn wait_until(
    w: &mut ResourceWatch,
    mut pred: impl FnMut(&ResourceUpdate) -> bool,
) -> ResourceUpdate {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let u = w.current_and_mark_seen();
        if pred(&u) {
            return u;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "timed out; last state: {u:?}");
        let _ = tokio::time::timeout(left, w.changed()).await;
    }
}
