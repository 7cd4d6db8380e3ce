//! TLS for real: STARTTLS and implicit TLS to aiosmtpd with a certificate from a test CA,
//! verified by rustls through the operating system's trust store, as in production.
//!
//! The trust store is where the test CA has to go, and on Linux it can be pointed elsewhere
//! only through `SSL_CERT_FILE`. Changing the environment of a running, multi-threaded test
//! process is unsound, so the test runs itself again as a child process with the variable set:
//! the parent makes the certificates, the child ([`CHILD_MARKER`] set) sends the mail.

mod support;

use flowgate_mailer::{Mailer, Security};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::Path;
use std::process::Command;
use support::{TestServer, parse, simple_email};

/// Set in the child process to the folder holding the test certificates.
const CHILD_MARKER: &str = "FLOWGATE_MAILER_TLS_TEST_DIR";

#[test]
fn sends_over_starttls_and_implicit_tls_verifying_the_certificate() {
    if let Ok(dir) = std::env::var(CHILD_MARKER) {
        tokio::runtime::Runtime::new().unwrap().block_on(child(Path::new(&dir)));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path());
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sends_over_starttls_and_implicit_tls_verifying_the_certificate", "--nocapture"])
        .env(CHILD_MARKER, dir.path())
        .env("SSL_CERT_FILE", dir.path().join("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the TLS checks failed (output above)");
    assert!(stdout.contains("test result: ok. 1 passed"), "the child ran the test");
}

/// A test CA (`ca.pem`), a server certificate it signed for 127.0.0.1 (`server.pem`, key
/// `server.key`), and one for the same address from a CA nobody trusts (`rogue.pem`, `rogue.key`).
fn write_certificates(dir: &Path) {
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        (cert, Issuer::new(params, key))
    };
    let leaf = |issuer: &Issuer<'_, KeyPair>, name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "flowgate test smtp");
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    };
    let (ca_cert, ca_issuer) = ca("Flowgate test CA");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    leaf(&ca_issuer, "server");
    let (_, rogue_issuer) = ca("Untrusted CA");
    leaf(&rogue_issuer, "rogue");
}

async fn child(dir: &Path) {
    let cert = |name: &str| dir.join(name).to_str().unwrap().to_string();
    for (mode, security) in [("starttls", Security::StartTls), ("implicit", Security::Tls)] {
        let args = ["--tls-cert", &cert("server.pem"), "--tls-key", &cert("server.key"), "--tls-mode", mode];
        let Some(server) = TestServer::start(&args) else { return };
        let mut config = server.config();
        config.security = security;
        let id = Mailer::new(config).unwrap().send(&simple_email("ann@example.org")).await.expect(mode);
        let received = server.received(1).pop().unwrap();
        assert_eq!(received.rcpt_tos, ["ann@example.org"], "{mode}");
        assert_eq!(parse(&received.raw).message_id().map(|m| format!("<{m}>")), Some(id), "{mode}");

        // The same server behind a certificate from an unknown CA: refused, and for good.
        let args = ["--tls-cert", &cert("rogue.pem"), "--tls-key", &cert("rogue.key"), "--tls-mode", mode];
        let Some(rogue) = TestServer::start(&args) else { return };
        let mut config = rogue.config();
        config.security = security;
        let err = Mailer::new(config).unwrap().send(&simple_email("ann@example.org")).await.unwrap_err();
        assert!(!err.retryable, "{mode}: {err}");
        assert!(err.message.contains("UnknownIssuer"), "{mode}: {err}");
        assert_eq!(rogue.received_count(), 0, "{mode}");
    }
}
