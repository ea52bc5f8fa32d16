//! `--ca-cert` against a real TLS server: a server certificate issued by a private CA verifies
//! through its chain, a self-signed one made the common way (`CA:TRUE`, as `openssl req -x509`
//! marks it) verifies because the server presents exactly a certificate of the bundle, and
//! everything else is still refused: another certificate, another host name, an expired pinned
//! certificate, no bundle at all.

use bbdc_host::http::{HttpError, TenantHttp};
use bbdc_host::{Credentials, TenantConfig};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

/// A certificate and its key.
struct Identity {
    pem: String,
    der: CertificateDer<'static>,
    key: KeyPair,
}

fn params(names: &[&str], ca: bool) -> CertificateParams {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("certificate parameters");
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}

/// Self-signed, with `CA:TRUE` like `openssl req -x509`.
fn self_signed(names: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> Identity {
    let key = KeyPair::generate().expect("key");
    let mut p = params(names, true);
    tweak(&mut p);
    let cert = p.self_signed(&key).expect("self-signed certificate");
    Identity {
        pem: cert.pem(),
        der: cert.der().clone(),
        key,
    }
}

/// A private CA and a server certificate it issued.
fn private_ca(names: &[&str]) -> (Identity, Identity) {
    let ca_key = KeyPair::generate().expect("key");
    let ca_params = params(&["Test Root CA"], true);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = params(names, false)
        .signed_by(&leaf_key, &issuer)
        .expect("server certificate");
    let ca = Identity {
        pem: ca_cert.pem(),
        der: ca_cert.der().clone(),
        key: KeyPair::generate().expect("key"),
    };
    (
        ca,
        Identity {
            pem: leaf.pem(),
            der: leaf.der().clone(),
            key: leaf_key,
        },
    )
}

/// Serves HTTPS on a free loopback port with `chain`, answering every request with a small JSON
/// body; returns the port.
fn serve(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(
        chain,
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"version":"9.2.4"}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes());
                let _ = tls.write_all(body);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

/// GETs `https://{host}:{port}/...` through the tenant's HTTP client, trusting `bundle`.
fn get(host: &str, port: u16, bundle: Option<&str>) -> Result<u16, HttpError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TenantConfig::new("tls", format!("https://{host}:{port}"), Credentials::None);
    config.http_policy.max_attempts = 1;
    if let Some(pem) = bundle {
        let path = dir.path().join("bundle.pem");
        std::fs::write(&path, pem).expect("bundle");
        config.ca_bundle = Some(path);
    }
    let http = TenantHttp::new(&config).expect("client");
    let url = format!("https://{host}:{port}/rest/api/1.0/application-properties");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    http.send("GET", &url, &[], deadline)
        .map(|(head, _)| head.status)
}

fn refused(result: Result<u16, HttpError>, why: &str) -> String {
    match result {
        Err(HttpError::Connection(msg)) => msg,
        other => panic!("{why}: expected a refused connection, got {other:?}"),
    }
}

#[test]
fn a_self_signed_ca_true_server_certificate_in_the_bundle_is_trusted() {
    let server = self_signed(&["localhost"], |_| {});
    let port = serve(vec![server.der.clone()], &server.key);
    assert_eq!(
        get("localhost", port, Some(&server.pem)).expect("trusted"),
        200
    );
    // The same server with public roots only, or with another bundle, is refused.
    refused(get("localhost", port, None), "no bundle");
    let other = self_signed(&["localhost"], |_| {});
    let msg = refused(
        get("localhost", port, Some(&other.pem)),
        "another certificate",
    );
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
}

#[test]
fn a_server_certificate_from_a_private_ca_verifies_through_its_chain() {
    let (ca, leaf) = private_ca(&["localhost"]);
    let port = serve(vec![leaf.der.clone(), ca.der.clone()], &leaf.key);
    assert_eq!(get("localhost", port, Some(&ca.pem)).expect("trusted"), 200);
    refused(get("localhost", port, None), "no bundle");
}

/// rustls says it as `NotValidForName` or "certificate not valid for name ...".
fn not_for_name(msg: &str) -> bool {
    msg.to_lowercase()
        .replace(' ', "")
        .contains("notvalidforname")
}

#[test]
fn the_host_name_is_still_checked() {
    // Pinned exactly, but made for another host.
    let server = self_signed(&["git.acme.example"], |_| {});
    let port = serve(vec![server.der.clone()], &server.key);
    let msg = refused(
        get("localhost", port, Some(&server.pem)),
        "wrong name, pinned",
    );
    assert!(not_for_name(&msg), "{msg}");
    // Through a chain, made for another host.
    let (ca, leaf) = private_ca(&["git.acme.example"]);
    let port = serve(vec![leaf.der.clone(), ca.der.clone()], &leaf.key);
    let msg = refused(get("localhost", port, Some(&ca.pem)), "wrong name, chain");
    assert!(not_for_name(&msg), "{msg}");
}

#[test]
fn an_expired_pinned_certificate_is_refused() {
    let server = self_signed(&["localhost"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let port = serve(vec![server.der.clone()], &server.key);
    let msg = refused(get("localhost", port, Some(&server.pem)), "expired");
    assert!(msg.to_lowercase().contains("expired"), "{msg}");
}
