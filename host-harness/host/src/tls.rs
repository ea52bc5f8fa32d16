//! TLS for a tenant that brings its own CA bundle (`--ca-cert`, `TenantConfig::ca_bundle`).
//!
//! rustls's WebPKI verifier accepts a server certificate only through a chain to a trust anchor
//! that is not itself the server's certificate: a self-signed server certificate made the common
//! way (`openssl req -x509`, which marks it `CA:TRUE`) fails with `CaUsedAsEndEntity` even when the
//! bundle holds exactly that certificate. curl, OpenSSL and Java accept it, because the presented
//! certificate *is* a trusted one. [`BundleVerifier`] does what they do, and nothing more:
//! - a server that presents exactly (byte for byte) a certificate of the bundle is trusted if
//!   that certificate is valid now and names the host (its subject alternative names; the
//!   common name only when it has none, as curl and Java do);
//! - every other server goes through full WebPKI chain validation against the bundle, host name
//!   included.
//!
//! Verification is never switched off. The connector plugs the verifier into ureq through its
//! connector chain ([`BundleTlsConnector`]), since ureq's own TLS settings take no verifier.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use std::io::{Read, Write};
use std::sync::Arc;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// Trusts the bundle's certificates as presented server certificates, and as roots for chains.
#[derive(Debug)]
pub struct BundleVerifier {
    pinned: Vec<CertificateDer<'static>>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl BundleVerifier {
    /// A verifier for `bundle` (DER certificates, at least one).
    pub fn new(bundle: Vec<CertificateDer<'static>>, provider: Arc<CryptoProvider>) -> Self {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(bundle.iter().cloned());
        // A bundle with no usable trust anchor still pins its certificates.
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .ok();
        Self {
            pinned: bundle,
            chain,
            provider,
        }
    }
}

fn invalid(e: CertificateError) -> rustls::Error {
    rustls::Error::InvalidCertificate(e)
}

/// Checks a pinned certificate's validity period and that it names `server_name`.
fn check_pinned(
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| invalid(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(invalid(CertificateError::NotValidYet));
    }
    if now > validity.not_after.timestamp() {
        return Err(invalid(CertificateError::Expired));
    }
    let has_san = matches!(cert.subject_alternative_name(), Ok(Some(_)));
    let by_san = webpki::EndEntityCert::try_from(der)
        .map_err(|_| invalid(CertificateError::BadEncoding))?
        .verify_is_valid_for_subject_name(server_name)
        .is_ok();
    let by_cn = !has_san
        && match server_name {
            ServerName::DnsName(name) => cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .any(|cn| cn.eq_ignore_ascii_case(name.as_ref())),
            _ => false,
        };
    if by_san || by_cn {
        Ok(())
    } else {
        Err(invalid(CertificateError::NotValidForName))
    }
}

impl ServerCertVerifier for BundleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            check_pinned(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(invalid(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client configuration that verifies servers with [`BundleVerifier`].
pub fn client_config(bundle: Vec<CertificateDer<'static>>) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = BundleVerifier::new(bundle, provider.clone());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Wraps ureq's TCP transport in TLS with a given rustls configuration, in place of ureq's own
/// TLS connector (whose settings take no custom verifier).
#[derive(Debug)]
pub struct BundleTlsConnector {
    config: Arc<ClientConfig>,
}

impl BundleTlsConnector {
    /// A connector using `config`.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<In: Transport> Connector<In> for BundleTlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("no host to verify"))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("not a host name TLS can verify"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// A TLS connection made by [`BundleTlsConnector`].
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// A ureq agent with `config` whose HTTPS connections verify servers against `bundle` (see the
/// module documentation). Plain HTTP is unaffected.
pub fn agent(
    config: ureq::config::Config,
    bundle: Vec<CertificateDer<'static>>,
) -> Result<ureq::Agent, rustls::Error> {
    use ureq::unversioned::resolver::DefaultResolver;
    use ureq::unversioned::transport::{ConnectProxyConnector, TcpConnector};
    let tls = BundleTlsConnector::new(client_config(bundle)?);
    let chain =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(tls);
    Ok(ureq::Agent::with_parts(
        config,
        chain,
        DefaultResolver::default(),
    ))
}
