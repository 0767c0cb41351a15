use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;

use super::*;
use crate::snapshot::{InboundListener, SnapshotResource};

const LDS: ResourceType = ResourceType::Listener;
const RDS: ResourceType = ResourceType::RouteConfiguration;
const CDS: ResourceType = ResourceType::Cluster;
const EDS: ResourceType = ResourceType::ClusterLoadAssignment;

/// A resource whose bytes are its name and a revision (the session never
/// decodes shared resources).
fn res(kind: ResourceType, name: &str, rev: u32) -> SnapshotResource {
    SnapshotResource::new(Any {
        type_url: kind.type_url().to_owned(),
        value: format!("{name}@{rev}").into_bytes(),
    })
}

fn snap(version: u64, items: &[(ResourceType, &str, u32)]) -> XdsSnapshot {
    let mut s = XdsSnapshot {
        version,
        ..Default::default()
    };
    for (k, n, r) in items {
        s.resources
            .entry(*k)
            .or_default()
            .insert((*n).to_owned(), res(*k, n, *r));
    }
    s
}

fn req(kind: ResourceType, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: kind.type_url().to_owned(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        response_nonce: nonce.to_owned(),
        node: Some(Node {
            id: "sidecar~127.0.0.1~a.default~default.svc.cluster.local".into(),
            user_agent_name: "test".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| String::from_utf8(a.value.clone()).unwrap())
        .collect()
}

fn session() -> Session {
    Session::new(ClientStatus::new(1, None))
}

fn one(mut out: Vec<DiscoveryResponse>) -> DiscoveryResponse {
    assert_eq!(out.len(), 1, "expected exactly one response: {out:?}");
    out.remove(0)
}

#[test]
fn first_request_gets_existing_names_only() {
    let s1 = snap(1, &[(EDS, "a", 1), (EDS, "b", 1)]);
    let mut s = session();
    let r = one(s.on_request(req(EDS, &["a", "missing"], ""), &s1));
    assert_eq!(names(&r), ["a@1"]);
    assert_eq!(r.version_info, "1");
    assert_eq!(r.type_url, EDS.type_url());
    assert_eq!(
        s.status().node_id,
        "sidecar~127.0.0.1~a.default~default.svc.cluster.local"
    );
    assert_eq!(s.status().user_agent, "test");
}

#[test]
fn missing_lds_cds_names_get_a_complete_response_rds_eds_none() {
    let s1 = snap(1, &[(LDS, "a", 1)]);
    let mut s = session();
    // LDS/CDS are complete state: answering without the name tells the
    // client at once that it does not exist.
    let r = one(s.on_request(req(LDS, &["nope"], ""), &s1));
    assert!(names(&r).is_empty(), "{r:?}");
    let r = one(s.on_request(req(LDS, &["a", "nope"], &r.nonce), &s1));
    assert_eq!(names(&r), ["a@1"]);
    // An ACK with the same names gets nothing more.
    assert!(
        s.on_request(req(LDS, &["a", "nope"], &r.nonce), &s1)
            .is_empty()
    );
    assert!(s.on_request(req(RDS, &["nope"], ""), &s1).is_empty());
}

#[test]
fn ack_records_version_and_sends_nothing() {
    let s1 = snap(7, &[(CDS, "c", 1)]);
    let mut s = session();
    let r = one(s.on_request(req(CDS, &["c"], ""), &s1));
    let mut ack = req(CDS, &["c"], &r.nonce);
    ack.version_info = r.version_info.clone();
    assert!(s.on_request(ack, &s1).is_empty());
    assert_eq!(s.status().acked[&CDS], "7");
    assert_eq!(s.status().responses_of(CDS), 1);
}

#[test]
fn nack_is_recorded_and_not_resent() {
    let s1 = snap(3, &[(LDS, "l", 1)]);
    let mut s = session();
    let r = one(s.on_request(req(LDS, &["l"], ""), &s1));
    let mut nack = req(LDS, &["l"], &r.nonce);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "bad listener".into(),
        details: vec![],
    });
    assert!(s.on_request(nack, &s1).is_empty(), "no NACK loop");
    let n = s.status().last_nack.clone().unwrap();
    assert_eq!((n.kind, n.error_detail.as_str()), (LDS, "bad listener"));
    assert_eq!(n.accepted_version, "");
    assert_eq!(s.status().nacks, 1);
    assert!(!s.status().acked.contains_key(&LDS));
}

#[test]
fn stale_nonce_is_ignored() {
    let s1 = snap(1, &[(EDS, "a", 1)]);
    let mut s = session();
    let r1 = one(s.on_request(req(EDS, &["a"], ""), &s1));
    let s2 = snap(2, &[(EDS, "a", 2)]);
    let r2 = one(s.on_snapshot(&s2));
    assert_ne!(r1.nonce, r2.nonce);
    let mut stale = req(EDS, &["a"], &r1.nonce);
    stale.error_detail = Some(RpcStatus::default());
    s.on_request(stale, &s2);
    assert_eq!(s.status().nacks, 0, "a NACK of an old nonce is stale");
}

#[test]
fn lds_cds_responses_are_complete_rds_eds_partial() {
    let s1 = snap(
        1,
        &[(CDS, "a", 1), (CDS, "b", 1), (EDS, "a", 1), (EDS, "b", 1)],
    );
    let mut s = session();
    one(s.on_request(req(CDS, &["a", "b"], ""), &s1));
    one(s.on_request(req(EDS, &["a", "b"], ""), &s1));
    let s2 = snap(
        2,
        &[(CDS, "a", 2), (CDS, "b", 1), (EDS, "a", 2), (EDS, "b", 1)],
    );
    let out = s.on_snapshot(&s2);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].type_url, CDS.type_url(), "clusters before endpoints");
    assert_eq!(names(&out[0]), ["a@2", "b@1"], "CDS carries all");
    assert_eq!(names(&out[1]), ["a@2"], "EDS carries the change");
}

#[test]
fn deletion_sends_complete_lds_without_it() {
    let s1 = snap(1, &[(LDS, "x", 1), (LDS, "y", 1)]);
    let mut s = session();
    one(s.on_request(req(LDS, &["x", "y"], ""), &s1));
    let r = one(s.on_snapshot(&snap(2, &[(LDS, "y", 1)])));
    assert_eq!(names(&r), ["y@1"]);
    let r = one(s.on_snapshot(&snap(3, &[])));
    assert!(
        r.resources.is_empty(),
        "deleting the last one is an empty response"
    );
}

#[test]
fn unchanged_snapshot_sends_nothing() {
    let s1 = snap(1, &[(EDS, "a", 1), (EDS, "b", 1)]);
    let mut s = session();
    one(s.on_request(req(EDS, &["a"], ""), &s1));
    assert!(
        s.on_snapshot(&snap(2, &[(EDS, "a", 1), (EDS, "b", 9)]))
            .is_empty()
    );
}

#[test]
fn rds_eds_vanished_resource_is_resent_when_back() {
    let mut s = session();
    one(s.on_request(req(RDS, &["r"], ""), &snap(1, &[(RDS, "r", 1)])));
    assert!(s.on_snapshot(&snap(2, &[])).is_empty(), "no RDS deletion");
    let r = one(s.on_snapshot(&snap(3, &[(RDS, "r", 1)])));
    assert_eq!(names(&r), ["r@1"]);
}

#[test]
fn resubscription_resends() {
    let s1 = snap(1, &[(EDS, "a", 1), (EDS, "b", 1)]);
    let mut s = session();
    let r = one(s.on_request(req(EDS, &["a"], ""), &s1));
    let r = one(s.on_request(req(EDS, &["a", "b"], &r.nonce), &s1));
    assert_eq!(names(&r), ["b@1"], "only the new one");
    assert!(s.on_request(req(EDS, &["b"], &r.nonce), &s1).is_empty());
    let r = one(s.on_request(req(EDS, &["a", "b"], &r.nonce), &s1));
    assert_eq!(names(&r), ["a@1"], "dropped then re-added: sent again");
}

#[test]
fn wildcard_from_empty_first_request_or_star() {
    let s1 = snap(1, &[(CDS, "a", 1), (CDS, "b", 1), (LDS, "l", 1)]);
    let mut s = session();
    let r = one(s.on_request(req(CDS, &[], ""), &s1));
    assert_eq!(names(&r), ["a@1", "b@1"]);
    assert!(s.status().subscriptions[&CDS].wildcard);
    let r = one(s.on_request(req(LDS, &["*"], ""), &s1));
    assert_eq!(names(&r), ["l@1"]);
    let r = one(s.on_snapshot(&snap(
        2,
        &[(CDS, "a", 1), (CDS, "b", 1), (CDS, "c", 1), (LDS, "l", 1)],
    )));
    assert_eq!(names(&r), ["a@1", "b@1", "c@1"]);
    // Naming resources ends the legacy wildcard; a changed CDS
    // subscription is answered with the complete (narrower) set.
    let r = one(s.on_request(req(CDS, &["a"], &r.nonce), &s1));
    assert_eq!(names(&r), ["a@1"]);
    assert!(!s.status().subscriptions[&CDS].wildcard);
    // ...and an empty list now means no subscription, not wildcard.
    let r = one(s.on_request(req(CDS, &["b"], &r.nonce), &s1));
    assert_eq!(names(&r), ["b@1"]);
    let r = one(s.on_request(req(CDS, &[], &r.nonce), &s1));
    assert!(names(&r).is_empty());
    assert!(!s.status().subscriptions[&CDS].wildcard);
    // RDS/EDS never become wildcard.
    assert!(
        s.on_request(req(EDS, &[], ""), &snap(1, &[(EDS, "a", 1)]))
            .is_empty()
    );
}

#[test]
fn inbound_listener_resolves_for_the_node() {
    let mut s1 = snap(1, &[]);
    s1.inbound.insert(
        ("127.0.0.1".parse().unwrap(), 7070),
        InboundListener {
            listener: Listener::default(),
        },
    );
    let mut s = session();
    let name = "xds.istio.io/grpc/lds/inbound/0.0.0.0:7070";
    let r = one(s.on_request(req(LDS, &[name], ""), &s1));
    let l = Listener::decode(r.resources[0].value.as_slice()).unwrap();
    assert_eq!(l.name, name);
    // Same inbound listener in a new snapshot: nothing to push.
    let mut s2 = s1.clone();
    s2.version = 2;
    assert!(s.on_snapshot(&s2).is_empty());
    // Another node IP: this node's listener is gone (complete LDS).
    let mut s3 = snap(3, &[]);
    s3.inbound.insert(
        ("10.9.9.9".parse().unwrap(), 7070),
        InboundListener {
            listener: Listener::default(),
        },
    );
    assert!(one(s.on_snapshot(&s3)).resources.is_empty());
}
