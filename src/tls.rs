//! TLS for every connection supergrep makes or accepts: `wss://` to a hub (agents,
//! `--connect`, `mark`), `ircs://`, and the hub's own `--tls-cert/--tls-key`.
//!
//! One way to do it everywhere: rustls with the *ring* provider (no OpenSSL, no
//! cmake on the build machine). Clients trust the system's root certificates
//! (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured) plus any given with `--tls-ca`, which
//! is how a self-signed hub or an internal CA is reached without switching checks off.
//! A server certificate that is exactly one of those given is trusted too, even when
//! it says it is a CA (see [`PinnedOrWebPki`]).

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error(
        "no trusted root certificates: none in the system store{0}; \
         give the hub's or your CA's certificate with --tls-ca FILE"
    )]
    NoRoots(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS setup: {0}")]
    Verifier(#[from] VerifierBuilderError),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |why: String| TlsError::File {
        path: path.to_owned(),
        why,
    };
    let pem = read_pem(path).map_err(file_error)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(pem_error(e)))?;
    if certs.is_empty() {
        return Err(file_error(
            "no PEM certificate (BEGIN CERTIFICATE) in it".into(),
        ));
    }
    Ok(certs)
}

/// The bytes of a PEM file we were given, read without waiting on a FIFO put
/// there (see [`crate::regular_file`]): the hub would hang at start-up.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    crate::regular_file::read(path).map_err(|e| format!("cannot read it: {e}"))
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read it: {e}"),
        e => format!("not valid PEM: {e}"),
    }
}

/// What a client trusts: the system's roots plus the certificates in `extra_ca`.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    let mut pinned = Vec::new();
    if let Some(path) = extra_ca {
        for cert in read_certs(path)? {
            roots.add(cert.clone()).map_err(|e| TlsError::File {
                path: path.to_owned(),
                why: format!("not a usable CA certificate: {e}"),
            })?;
            pinned.push(cert);
        }
    }
    if roots.is_empty() {
        let why = native
            .errors
            .first()
            .map_or(String::new(), |e| format!(" ({e})"));
        return Err(TlsError::NoRoots(why));
    }
    tracing::debug!("TLS: {added} system root certificates");
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if pinned.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        // The verifier `with_root_certificates` makes, built the same way, so that
        // everything it accepts is still accepted and checked alike.
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki { webpki, pinned }))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The usual webpki verification, and one exception to it: a server certificate that
/// is byte for byte one of those given with `--tls-ca` needs no chain to a root. The
/// user gave us exactly this certificate, and webpki would refuse it as the server's
/// own whenever it says it is a CA (`CaUsedAsEndEntity`), which is what
/// `openssl req -x509` makes by default. The handshake's signatures are checked by
/// webpki alone, so a server without the certificate's private key still fails.
#[derive(Debug)]
struct PinnedOrWebPki {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        // Only a missing chain is forgiven. webpki looks at the certificate's own
        // dates before its chain, so an expired one is still refused for that.
        let is_pinned = self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref());
        if !is_pinned || !no_trusted_chain(&refused) {
            return Err(refused);
        }
        // webpki checks the name only once the chain is good: check it here.
        rustls::client::verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        tracing::debug!("TLS: the server's certificate is one given with --tls-ca ({refused})");
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.webpki.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

/// Whether rustls refused the server's certificate for want of a chain to a root we
/// trust (rather than for its dates or names, say): what `--tls-ca` is for.
fn no_trusted_chain(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => true,
        // rustls has no variant of its own for this one and passes webpki's on.
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// What to do when the server's certificate has no chain to a trusted root.
const UNTRUSTED_HINT: &str =
    "if the server's certificate is self-signed or from an internal CA, pass it with --tls-ca FILE";

/// `e` as a client shows it, with what to do when it is about a certificate that
/// `--tls-ca` would make trusted: every client's "cannot reach" message comes here
/// (through [`connect`] or [`crate::client::HubEndpoint::connect`]).
pub fn explain(e: &(dyn StdError + 'static)) -> String {
    match hint(e) {
        Some(hint) => format!("{e}; {hint}"),
        None => e.to_string(),
    }
}

fn hint(e: &(dyn StdError + 'static)) -> Option<&'static str> {
    rustls_error(e)
        .filter(|r| no_trusted_chain(r))
        .map(|_| UNTRUSTED_HINT)
}

/// The rustls error behind `e`, if any.
fn rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // An io::Error's `source()` skips the error it wraps (tokio-rustls puts
        // rustls's there).
        next = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The hub's certificate chain and key, both PEM (the key PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs(cert)?;
    let key_error = |why| TlsError::File {
        path: key.to_owned(),
        why,
    };
    let pem = read_pem(key).map_err(key_error)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        key_error(match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (BEGIN PRIVATE KEY) in it".into()
            }
            e => pem_error(e),
        })
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // WebSocket upgrades are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A byte stream that may or may not be encrypted (IRC, `mark`'s HTTP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// TCP to `host:port`, then TLS when `tls` is given (checked against `host`).
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| match hint(&e) {
            Some(_) => io::Error::new(e.kind(), explain(&e)),
            None => e,
        })?;
    Ok(Box::new(stream))
}

/// How long a client may take over its TLS handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more wait in the kernel's accept queue.
const MAX_HANDSHAKES: usize = 256;

/// An [`axum::serve::Listener`] that hands out connections once their TLS
/// handshake is done. Handshakes run in their own tasks, so one slow or hostile
/// client cannot hold up everybody else's accept. A failed accept waits as the
/// plain listener's does ([`crate::open_files::accept_backoff`]) and is counted in
/// `accept_errors`. The accept loop and each handshake hold a child of `shutdown`,
/// and end when it says stop.
pub struct TlsListener {
    ready: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        accept_errors: Arc<AtomicU64>,
        shutdown: crate::shutdown::Handle,
    ) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            let mut backoff = None;
            loop {
                let permit = tokio::select! {
                    permit = handshakes.clone().acquire_owned() => permit,
                    () = shutdown.stopping() => return,
                };
                let Ok(permit) = permit else {
                    return;
                };
                let (stream, peer) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => {
                            backoff = None;
                            a
                        }
                        Err(e) => {
                            // Out of file descriptors, say: wait rather than spin.
                            let wait = crate::open_files::accept_backoff(backoff);
                            backoff = Some(wait);
                            accept_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("accept: {e}; waiting {wait:?}");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                    },
                    _ = tx.closed() => return,
                    () = shutdown.stopping() => return,
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY: {e}");
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                let handshake = shutdown.child(crate::shutdown::Kind::TlsHandshake);
                tokio::spawn(async move {
                    let _permit = permit;
                    let accepting =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let accepted = tokio::select! {
                        accepted = accepting => accepted,
                        () = handshake.stopping() => return,
                    };
                    match accepted {
                        Ok(Ok(tls)) => {
                            // The listener is gone once the hub stops: then this fails.
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends with this listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    /// A self-signed certificate for localhost and 127.0.0.1 that says it is a CA, as
    /// `openssl req -x509` makes them, with its key.
    fn self_signed_ca(valid: bool) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(names).context("certificate parameters")?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        if !valid {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().context("generating a key pair")?;
        let cert = params
            .self_signed(&key)
            .context("self-signing the certificate")?;
        Ok((cert, key))
    }

    /// [`client_config`] with `trusted` as the `--tls-ca` file.
    fn client_trusting(trusted: &[&rcgen::Certificate]) -> anyhow::Result<Arc<ClientConfig>> {
        let dir = tempfile::tempdir().context("creating a tempdir")?;
        let path = dir.path().join("ca.pem");
        let pem: String = trusted.iter().map(|c| c.pem()).collect();
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        client_config(Some(&path)).context("client_config with --tls-ca")
    }

    /// A whole handshake in memory: the client's verdict (or the server's), inside
    /// the error of setting it up or of moving its bytes.
    fn handshake(
        client: Arc<ClientConfig>,
        name: &str,
        cert: &rcgen::Certificate,
        key: &KeyPair,
    ) -> anyhow::Result<Result<(), rustls::Error>> {
        // `with_single_cert` would refuse a key that is not the certificate's: a
        // resolver does not ask.
        let signing = provider()
            .key_provider
            .load_private_key(
                PrivateKeyDer::try_from(key.serialize_der())
                    .map_err(anyhow::Error::msg)
                    .context("the key's DER")?,
            )
            .context("loading the private key")?;
        let certified = rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing);
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("server protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        let name = ServerName::try_from(name.to_owned()).context("the server name")?;
        let mut c = match rustls::ClientConnection::new(client, name) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let mut s = match rustls::ServerConnection::new(Arc::new(server)) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        // A handful of flights; an empty one is not sent (it would read as EOF).
        for _ in 0..10 {
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(Ok(()));
            }
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).context("client write_tls")?;
            }
            if !wire.is_empty() {
                s.read_tls(&mut wire.as_slice())
                    .context("server read_tls")?;
                if let Err(e) = s.process_new_packets() {
                    return Ok(Err(e));
                }
            }
            wire.clear();
            while s.wants_write() {
                s.write_tls(&mut wire).context("server write_tls")?;
            }
            if !wire.is_empty() {
                c.read_tls(&mut wire.as_slice())
                    .context("client read_tls")?;
                if let Err(e) = c.process_new_packets() {
                    return Ok(Err(e));
                }
            }
        }
        panic!("the handshake did not finish");
    }

    fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
        matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(o))
            if o.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity))
    }

    #[test]
    fn the_very_certificate_given_is_trusted_for_its_names_only() -> anyhow::Result<()> {
        let (cert, key) = self_signed_ca(true)?;
        let (other, _) = self_signed_ca(true)?;
        let client = client_trusting(&[&other, &cert])?;
        handshake(client.clone(), "localhost", &cert, &key)?.context("handshake for localhost")?;
        handshake(client.clone(), "127.0.0.1", &cert, &key)?.context("handshake for 127.0.0.1")?;
        let wrong_name = handshake(client, "example.com", &cert, &key)?.unwrap_err();
        assert!(
            matches!(
                wrong_name,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{wrong_name:?}"
        );
        Ok(())
    }

    #[test]
    fn another_certificate_an_expired_one_or_a_stolen_one_is_refused() -> anyhow::Result<()> {
        let (cert, key) = self_signed_ca(true)?;
        let (other, other_key) = self_signed_ca(true)?;
        // Webpki's refusal, which is also what recognising it depends on.
        let e = handshake(client_trusting(&[&other])?, "localhost", &cert, &key)?.unwrap_err();
        assert!(is_ca_used_as_end_entity(&e), "{e:?}");
        assert!(explain(&e).ends_with(UNTRUSTED_HINT), "{}", explain(&e));
        // The certificate given, but the server signs with another key.
        let e = handshake(client_trusting(&[&cert])?, "localhost", &cert, &other_key)?.unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::BadSignature)
            ),
            "{e:?}"
        );
        let (expired, expired_key) = self_signed_ca(false)?;
        let e = handshake(
            client_trusting(&[&expired])?,
            "localhost",
            &expired,
            &expired_key,
        )?
        .unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{e:?}"
        );
        assert_eq!(
            explain(&e),
            e.to_string(),
            "no hint: --tls-ca would not help"
        );
        Ok(())
    }

    #[test]
    fn the_hint_is_found_behind_an_io_error() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(
            explain(&e),
            format!("invalid peer certificate: UnknownIssuer; {UNTRUSTED_HINT}")
        );
        let e = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(explain(&e), "refused");
    }
}
