//! tonic-xds's channel ([`tonic_xds::XdsChannelGrpc`]) for the tonic-xds
//! rows, built from the same bootstrap file as the mesh rows, with one
//! adaptation ([`for_tonic_xds`]): tonic-xds hands a plaintext `server_uri`
//! to tonic's `Endpoint` as is, which does not connect to a bare
//! `host:port` (a valid gRPC target, and what mesh-control writes), so
//! `http://` is put in front.
//!
//! Its error type is a boxed `dyn Error`, which the `Send` check of the
//! load loop's `async fn` cannot prove general over lifetimes (a known
//! rustc limitation); [`XdsGrpc`] only gives the error a concrete type. It
//! adds no allocation: the inner future is already boxed and is polled in
//! place.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic_xds::{BootstrapConfig, XdsChannelBuilder, XdsChannelConfig, XdsChannelGrpc, XdsUri};
use tower::Service;

use crate::BoxError;
use crate::certs::read_pem;

/// tonic-xds's channel with a concrete error type. Cheap to clone.
#[derive(Clone)]
pub struct XdsGrpc(XdsChannelGrpc);

impl XdsGrpc {
    /// Builds the channel for `target` (`xds:///host:port`) from the
    /// bootstrap JSON at `bootstrap` (the env variables are not read). It
    /// connects to the control plane in the background: the first calls may
    /// fail until the config arrives.
    pub fn build(bootstrap: &Path, target: &str) -> Result<XdsGrpc, BoxError> {
        let json: serde_json::Value = serde_json::from_str(&read_pem(bootstrap)?)
            .map_err(|e| format!("{}: {e}", bootstrap.display()))?;
        let bootstrap = BootstrapConfig::from_json(&for_tonic_xds(json).to_string())?;
        let config = XdsChannelConfig::new(XdsUri::parse(target)?).with_bootstrap(bootstrap);
        Ok(XdsGrpc(
            XdsChannelBuilder::new(config).build_grpc_channel()?,
        ))
    }
}

/// `bootstrap` with `http://` in front of every scheme-less `server_uri`
/// whose first channel credential is `insecure`.
pub fn for_tonic_xds(mut bootstrap: serde_json::Value) -> serde_json::Value {
    if let Some(servers) = bootstrap["xds_servers"].as_array_mut() {
        for s in servers {
            let insecure = s["channel_creds"][0]["type"] == "insecure";
            if let Some(uri) = s["server_uri"].as_str().filter(|u| !u.contains("://"))
                && insecure
            {
                s["server_uri"] = format!("http://{uri}").into();
            }
        }
    }
    bootstrap
}

/// A tonic-xds call's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct XdsCallError(BoxError);

/// The response future of [`XdsGrpc`].
pub struct XdsCall(<XdsChannelGrpc as Service<http::Request<Body>>>::Future);

impl Future for XdsCall {
    type Output = Result<http::Response<Body>, XdsCallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(XdsCallError)
    }
}

impl Service<http::Request<Body>> for XdsGrpc {
    type Response = http::Response<Body>;
    type Error = XdsCallError;
    type Future = XdsCall;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(XdsCallError)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        XdsCall(self.0.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plaintext_server_uri_gets_a_scheme() {
        let b = json!({"xds_servers": [
            {"server_uri": "127.0.0.1:1", "channel_creds": [{"type": "insecure"}]},
            {"server_uri": "xds.example:443", "channel_creds": [{"type": "tls"}]},
            {"server_uri": "http://127.0.0.1:2", "channel_creds": [{"type": "insecure"}]},
        ]});
        let b = for_tonic_xds(b);
        assert_eq!(b["xds_servers"][0]["server_uri"], "http://127.0.0.1:1");
        assert_eq!(b["xds_servers"][1]["server_uri"], "xds.example:443");
        assert_eq!(b["xds_servers"][2]["server_uri"], "http://127.0.0.1:2");
        BootstrapConfig::from_json(&b.to_string()).unwrap();
    }
}
