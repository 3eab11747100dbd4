//! Self-signed X.509 v3 certificates (RFC 5280 §4.1) for the keys the emulator provisions.

use crate::tlv::der;

/// What goes into a certificate.
pub struct CertSpec<'a> {
    pub common_name: &'a str,
    /// organizationName, placed before the common name when present.
    pub organization: Option<&'a str>,
    pub serial: &'a [u8],
    /// DER SubjectPublicKeyInfo.
    pub spki: &'a [u8],
    /// DER AlgorithmIdentifier of the signature (RFC 5280 §4.1.1.2).
    pub sig_alg: &'a [u8],
    /// KeyUsage bits, first byte (RFC 5280 §4.2.1.3: 0x80 digitalSignature,
    /// 0x40 nonRepudiation, 0x20 keyEncipherment, 0x08 keyAgreement).
    pub key_usage: u8,
}

/// Builds the certificate; `sign` receives the DER TBSCertificate and returns the raw
/// signatureValue contents (RFC 5280 §4.1.1.3).
pub fn self_signed(
    spec: &CertSpec<'_>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, crate::crypto::CryptoError>,
) -> Result<Vec<u8>, crate::crypto::CryptoError> {
    let mut rdns = Vec::new();
    if let Some(o) = spec.organization {
        rdns.push(der::set(&[&der::seq(&[
            &der::oid("2.5.4.10"), // id-at-organizationName (RFC 5280 App. A)
            &der::utf8(o),
        ])]));
    }
    rdns.push(der::set(&[&der::seq(&[
        &der::oid("2.5.4.3"), // id-at-commonName
        &der::utf8(spec.common_name),
    ])]));
    let name = der::seq(&rdns.iter().map(Vec::as_slice).collect::<Vec<_>>());
    // Fixed validity (UTCTime, RFC 5280 §4.1.2.5.1): deterministic, no clock needed.
    let validity = der::seq(&[
        &der::utc_time("240101000000Z"),
        &der::utc_time("491231235959Z"),
    ]);
    // KeyUsage BIT STRING: one byte, unused trailing zero bits counted (X.690 §11.2.2).
    let ku = spec.key_usage;
    let unused = if ku == 0 {
        0
    } else {
        ku.trailing_zeros() as u8
    };
    let ku_der = crate::tlv::tlv(0x03, &[unused, ku]);
    let ext_ku = der::seq(&[
        &der::oid("2.5.29.15"), // id-ce-keyUsage
        &[0x01, 0x01, 0xFF],    // critical TRUE
        &der::octet_string(&ku_der),
    ]);
    let ext_bc = der::seq(&[
        &der::oid("2.5.29.19"), // id-ce-basicConstraints, cA FALSE (empty SEQUENCE)
        &der::octet_string(&der::seq(&[])),
    ]);
    let exts = der::explicit(3, &der::seq(&[&ext_bc, &ext_ku]));
    let tbs = der::seq(&[
        &der::explicit(0, &der::uint(&[2])), // v3
        &der::uint(spec.serial),
        spec.sig_alg,
        &name,
        &validity,
        &name,
        spec.spki,
        &exts,
    ]);
    let sig = sign(&tbs)?;
    Ok(der::seq(&[&tbs, spec.sig_alg, &der::bit_string(&sig)]))
}
