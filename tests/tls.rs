//! TLS end to end, with certificates made for each test by a private CA (rcgen):
//! a hub started with `--tls-cert/--tls-key`, an agent shipping to it over `wss://`,
//! `--connect wss://` printing the matches, `mark` over HTTPS, `ircs://` to a real
//! ngircd listening with TLS, a self-signed hub certificate that says it is a CA (as
//! `openssl req -x509` makes them) trusted as given with `--tls-ca` — and the refusals:
//! an untrusted certificate, another self-signed one, a plain client at a TLS port,
//! unreadable certificate files; and a TLS hub out of file descriptors.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::agent::Agent;
use support::files::{append, TempLog};
use support::free_port;
use support::http::metric_in;
use support::hub::{open_fds, serve_with_few_descriptors, Hub};
use support::irc::{self, Ircd, IrcdOptions};
use support::proc::{bin, supergrep, Proc};
use support::wait::wait_until;

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, as PEM files.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// A second CA that signed nothing here: trusting it must not help.
    other_ca: PathBuf,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = ca("supergrep test CA");
    let (other_pem, _) = ca("some other CA");
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Certs {
        ca: write("ca.pem", &ca_pem),
        cert: write("hub.pem", &cert.pem()),
        key: write("hub.key", &key.serialize_pem()),
        other_ca: write("other-ca.pem", &other_pem),
        _dir: dir,
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1 that also says it is a CA
/// (basicConstraints CA:TRUE), as `openssl req -x509` makes them by default; written
/// to `dir` as `NAME.pem` and `NAME.key`.
fn self_signed_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tls_hub(certs: &Certs, extra: &[&str]) -> Hub {
    let mut args = vec!["--tls-cert", s(&certs.cert), "--tls-key", s(&certs.key)];
    args.extend_from_slice(extra);
    Hub::start(&args)
}

#[test]
fn agent_connect_and_mark_work_over_tls() {
    let certs = certs();
    let hub = tls_hub(&certs, &["--token", "s3cret"]);
    let log = TempLog::new("app.log");

    let mut agent = Agent::start(
        &hub.agent_url(),
        "web01",
        &[&log.path],
        &["--token", "s3cret", "--tls-ca", s(&certs.ca)],
    );
    // Written before the viewer connects: it asks for recent matches (-n), so the
    // lines arrive whether the agent has shipped them by then or not.
    append(&log.path, "INFO fine\nERROR over tls 1\nERROR over tls 2\n");
    let url = hub.agent_url();
    let mut viewer = supergrep(&[
        "--connect",
        &url,
        "--token",
        "s3cret",
        "--tls-ca",
        s(&certs.ca),
        "--color",
        "never",
        "-n",
        "100",
        "-e",
        "ERROR",
    ]);
    let got = viewer.lines(2);
    assert!(got[0].contains("ERROR over tls 1"), "{got:?}");
    assert!(got[1].contains("ERROR over tls 2"), "{got:?}");
    assert!(
        got[0].contains("web01"),
        "the agent's name is the host: {got:?}"
    );

    // `mark` takes the same URL and trusts the same CA.
    let mut mark = bin();
    mark.args(["mark", "--hub", &url, "--token", "s3cret", "--tls-ca"])
        .arg(&certs.ca)
        .arg("deploy 42");
    let out = mark.output().unwrap();
    assert!(
        out.status.success(),
        "mark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = viewer.lines(1);
    assert!(marker[0].contains("deploy 42"), "{marker:?}");

    assert!(agent.proc.running(), "{}", agent.proc.stderr_text());
}

#[test]
fn an_untrusted_certificate_is_refused_and_said_so() {
    let certs = certs();
    let hub = tls_hub(&certs, &[]);
    let log = TempLog::new("app.log");

    // Trusting another CA (and the system's) does not make the hub's certificate good:
    // the agent keeps retrying and says why.
    let mut agent = Agent::spawn(
        &hub.agent_url(),
        "web01",
        &[&log.path],
        &["--tls-ca", s(&certs.other_ca)],
    );
    let said = agent
        .proc
        .wait_stderr(&["cannot reach the hub at wss://localhost", "retrying"]);
    assert!(
        said.to_lowercase().contains("certificate"),
        "the reason names the certificate: {said}"
    );
    assert!(said.contains("pass it with --tls-ca FILE"), "{said}");
    assert!(agent.proc.running());
    assert_eq!(agent.connections(), 0);

    // A plain WebSocket at the TLS port gets nowhere either.
    let plain = format!("ws://127.0.0.1:{}", hub.port);
    let mut plain_agent = Agent::spawn(&plain, "web02", &[&log.path], &[]);
    plain_agent
        .proc
        .wait_stderr(&["cannot reach the hub at ws://127.0.0.1", "retrying"]);
    assert_eq!(plain_agent.connections(), 0);
}

#[test]
fn a_self_signed_ca_certificate_given_with_tls_ca_is_trusted() {
    // webpki alone refuses a certificate that says it is a CA as the server's own
    // (CaUsedAsEndEntity): given exactly that certificate, the clients trust it.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_ca(dir.path(), "hub");
    let log = TempLog::new("app.log");
    let hub = Hub::start_following(
        &["--tls-cert", s(&cert), "--tls-key", s(&key), log.s()],
        &[&log.path],
    );
    append(&log.path, "INFO fine\nERROR pinned 1\n");
    // By address, as in the report: the certificate names 127.0.0.1 too.
    let url = format!("wss://127.0.0.1:{}", hub.port);
    let mut viewer = supergrep(&[
        "--connect",
        &url,
        "--tls-ca",
        s(&cert),
        "--color",
        "never",
        "-n",
        "100",
        "-e",
        "ERROR",
    ]);
    let got = viewer.lines(1);
    assert!(got[0].contains("ERROR pinned 1"), "{got:?}");

    // `mark` reaches the hub its own way (HTTPS, by name) and trusts the same.
    let out = bin()
        .args(["mark", "--hub", &hub.agent_url(), "--tls-ca", s(&cert)])
        .arg("deploy 7")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = viewer.lines(1);
    assert!(marker[0].contains("deploy 7"), "{marker:?}");
}

#[test]
fn another_self_signed_certificate_is_refused_and_the_client_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_ca(dir.path(), "hub");
    // The same names, another key: only the hub's own certificate may be trusted.
    let (other, _) = self_signed_ca(dir.path(), "other");
    let log = TempLog::new("app.log");
    let hub = Hub::start_following(
        &["--tls-cert", s(&cert), "--tls-key", s(&key), log.s()],
        &[&log.path],
    );
    append(&log.path, "ERROR must not arrive\n");
    let url = format!("wss://127.0.0.1:{}", hub.port);
    let args = ["--connect", &url, "-n", "100", "-e", "ERROR"];

    let mut viewer = supergrep(&[&args[..], &["--tls-ca", s(&other)]].concat());
    // Two failed attempts in a row, each said with what to do, and nothing received.
    let said = viewer.wait_stderr_n(&["cannot reach the hub", "retrying"], 2);
    assert!(said.contains("certificate"), "{said}");
    assert!(said.contains("pass it with --tls-ca FILE"), "{said}");
    assert_eq!(viewer.drain(Duration::ZERO), Vec::<String>::new());

    // Without --tls-ca (and with `other` the only root, whatever the machine has).
    let mut cmd = bin();
    cmd.args(args)
        .env("SSL_CERT_FILE", &other)
        .env_remove("SSL_CERT_DIR");
    let mut bare = Proc::spawn_reading_stdout("supergrep", cmd);
    let said = bare.wait_stderr(&["cannot reach the hub", "retrying"]);
    assert!(said.contains("pass it with --tls-ca FILE"), "{said}");
    assert_eq!(bare.drain(Duration::ZERO), Vec::<String>::new());

    // `mark` fails, and says the same.
    let out = bin()
        .args(["mark", "--hub", &url, "--tls-ca", s(&other), "nope"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("pass it with --tls-ca FILE"), "{err}");
}

#[test]
fn bad_certificate_files_are_named() {
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--tls-cert", s(&missing), "--tls-key", s(&certs.key)],
            format!("{}: cannot read it", missing.display()),
        ),
        (
            vec!["--tls-cert", s(&empty), "--tls-key", s(&certs.key)],
            format!("{}: no PEM certificate", empty.display()),
        ),
        (
            vec!["--tls-cert", s(&certs.cert), "--tls-key", s(&certs.cert)],
            format!("{}: no PEM private key", certs.cert.display()),
        ),
    ];
    for (args, want) in cases {
        let out = bin()
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}: want {want:?} in {err}");
    }
    // --tls-cert without --tls-key is a usage error.
    let out = bin()
        .args(["serve", "--tls-cert", s(&certs.cert)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));

    // A CA file that holds no certificate is named too (clients).
    let out = bin()
        .args([
            "--connect",
            "wss://localhost:1",
            "-e",
            "x",
            "--tls-ca",
            s(&empty),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}: no PEM certificate", empty.display())),
        "{err}"
    );
}

#[test]
fn posts_to_irc_over_tls() {
    let certs = certs();
    // ngircd reads its key after it has given up root: let it.
    for f in [&certs.cert, &certs.key] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let ircd = Ircd::start_with(IrcdOptions {
        tls: Some((certs.cert.clone(), certs.key.clone())),
        ..IrcdOptions::default()
    });
    let watcher = irc::Client::connect(ircd.port, "watcher");
    watcher.join("#tls");
    let log = TempLog::new("app.log");
    let url = format!("ircs://localhost:{}/#tls", ircd.tls_port);
    // supergrep posting to `url`, trusting the CA `ca`.
    let posting =
        |ca: &Path| supergrep(&["-e", "Fatal", log.s(), "--irc", &url, "--tls-ca", s(ca)]);
    let mut sg = posting(&certs.ca);
    sg.wait_irc_ready(&log.path, "#tls");
    append(&log.path, "PHP Fatal error over TLS\n");
    let said = watcher.wait_said("#tls", 1);
    assert!(
        said[0].text.contains("PHP Fatal error over TLS"),
        "{said:?}"
    );

    // Trusting another CA, the certificate is refused: supergrep says so and retries.
    let mut untrusting = posting(&certs.other_ca);
    let why = untrusting.wait_stderr(&["cannot connect to IRC server"]);
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    assert_eq!(
        untrusting.exit_code_within(Duration::from_millis(200)),
        None
    );
}

/// `GET /metrics` from a TLS hub, trusting `ca`: the value of metric `name`.
fn https_metric(port: u16, ca: &Path, name: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let page = runtime.block_on(async {
        let config = supergrep::tls::client_config(Some(ca)).ok()?;
        let mut stream = supergrep::tls::connect("localhost", port, Some(&config))
            .await
            .ok()?;
        let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.ok()?;
        // Read to the end, or to an error (a close without close_notify): the page is
        // in what came before.
        let (mut page, mut chunk) = (Vec::new(), [0; 8192]);
        while let Ok(n @ 1..) = stream.read(&mut chunk).await {
            page.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(page).ok()
    })?;
    metric_in(&page, name)
}

/// Out of file descriptors, the TLS listener retried an accept every 50 ms and
/// counted nothing; now each failure is counted in `/metrics` (the wait between
/// them is `open_files::accept_backoff`, unit-tested there), and the hub serves
/// again once descriptors free up.
#[test]
fn a_tls_hub_out_of_descriptors_counts_failed_accepts_and_recovers() {
    let certs = certs();
    let (limit, port) = (64, free_port());
    let args = [
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--tls-cert".to_owned(),
        s(&certs.cert).to_owned(),
        "--tls-key".to_owned(),
        s(&certs.key).to_owned(),
    ];
    let hub = serve_with_few_descriptors(limit, &args);
    // Connections that never start their handshake hold a descriptor each.
    let held: Vec<_> = (0..limit + 16)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    wait_until("the hub out of descriptors", || {
        open_fds(hub.pid()) >= limit as usize
    });
    drop(held);
    wait_until("/metrics over https, with the failed accepts", || {
        https_metric(port, &certs.ca, "supergrep_accept_errors_total").is_some_and(|n| n > 0)
    });
}
