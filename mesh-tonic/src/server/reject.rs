//! Responses for requests the server refuses before they reach the service:
//! a gRPC Trailers-Only response (HTTP 200, `grpc-status`, `grpc-message`,
//! no body) for gRPC requests, a plain HTTP status for others.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use tonic::Code;

/// Whether the request is a gRPC call (`content-type: application/grpc...`).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The refusal of a request: Trailers-Only for gRPC (so clients may retry
/// it), else an HTTP status mapped from `code` with the message as body.
pub(crate) fn refuse(grpc: bool, code: Code, message: &str) -> Response<Full<Bytes>> {
    if grpc {
        let mut r = Response::new(Full::new(Bytes::new()));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from(code as i32));
        if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
            h.insert("grpc-message", v);
        }
        return r;
    }
    let status = match code {
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut r = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`, become
/// `%XX` (gRPC's HTTP/2 protocol spec).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_refusals_are_trailers_only() {
        let r = refuse(true, Code::Unavailable, "no route for \"/a\" 100%");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], "no route for \"/a\" 100%25");
        assert_eq!(percent_encode("é\n"), "%C3%A9%0A");
    }

    #[test]
    fn http_refusals_use_a_status() {
        assert_eq!(
            refuse(false, Code::Unavailable, "x").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            refuse(false, Code::PermissionDenied, "x").status(),
            StatusCode::FORBIDDEN
        );
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&h));
    }
}
