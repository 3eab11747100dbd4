//! CMS SignedData (RFC 5652) with CAdES-BES signed attributes (ETSI EN 319 122-1 §5.2:
//! contentType, messageDigest, signingTime, signingCertificateV2), built and parsed with the
//! RustCrypto `cms` crate (0.3.0-pre.1: the release that uses der 0.8 / x509-cert 0.3 / spki 0.8
//! like the rest of the workspace). Only the ESS structures of RFC 5035, which `cms` does not
//! have, are declared here with `der` derive.

pub mod alg;
pub mod check;

use crate::error::{CliError, Result};
use alg::{DigestAlg, SignAlg};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Header, Length, Reader, SliceReader, Tag, TagNumber};
use spki::AlgorithmIdentifierOwned;
use std::io::{Read, Write};
use std::path::Path;
use x509_cert::Certificate;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

/// id-data, id-signedData (RFC 5652 §4, §5.1).
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-contentType, id-messageDigest, id-signingTime (RFC 5652 §11.1-11.3).
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// id-aa-signingCertificateV2 (RFC 5035 §3) and id-aa-signingCertificate (RFC 2634 §5.4).
pub const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
pub const ID_SIGNING_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");

/// `IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }`
/// (RFC 5035 §4).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct IssuerSerial {
    pub issuer: Vec<GeneralName>,
    pub serial_number: SerialNumber,
}

/// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},
/// certHash Hash, issuerSerial IssuerSerial OPTIONAL }` (RFC 5035 §4). The DEFAULT is
/// modelled as OPTIONAL: absent means SHA-256 (DER leaves the default value out, X.690 §11.5).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct EssCertIdV2 {
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub cert_hash: OctetString,
    pub issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies SEQUENCE OF
/// PolicyInformation OPTIONAL }` (RFC 5035 §3); policies are neither written nor needed.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
    pub policies: Option<Any>,
}

fn der_err(e: der::Error) -> CliError {
    CliError::new(format!("cannot encode the signature: {e}"))
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(der_err)?;
    Ok(Attribute { oid, values })
}

/// The hash used for the certificate in signingCertificateV2: SHA-256 (the DEFAULT), or the
/// signature's Streebog for GOST signers (as CAdES profiles for GOST do).
fn cert_hash_alg(alg: SignAlg) -> DigestAlg {
    match alg.digest {
        DigestAlg::Streebog256 | DigestAlg::Streebog512 => alg.digest,
        _ => DigestAlg::Sha256,
    }
}

/// The four CAdES-BES signed attributes.
pub fn signed_attributes(
    alg: SignAlg,
    content_digest: &[u8],
    cert: &Certificate,
    cert_der: &[u8],
    signing_time: Time,
) -> Result<Attributes> {
    let hash_alg = cert_hash_alg(alg);
    let tbs = cert.tbs_certificate();
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: (hash_alg != DigestAlg::Sha256).then(|| hash_alg.identifier()),
            cert_hash: OctetString::new(hash_alg.digest(cert_der)).map_err(der_err)?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(tbs.issuer().clone())],
                serial_number: tbs.serial_number().clone(),
            }),
        }],
        policies: None,
    };
    let mut attrs = Attributes::new();
    for a in [
        attribute(
            ID_CONTENT_TYPE,
            Any::encode_from(&ID_DATA).map_err(der_err)?,
        )?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(content_digest.to_vec()).map_err(der_err)?)
                .map_err(der_err)?,
        )?,
        attribute(
            ID_SIGNING_TIME,
            Any::encode_from(&signing_time).map_err(der_err)?,
        )?,
        attribute(
            ID_SIGNING_CERTIFICATE_V2,
            Any::encode_from(&ess).map_err(der_err)?,
        )?,
    ] {
        attrs.insert(a).map_err(der_err)?;
    }
    Ok(attrs)
}

/// The bytes that are signed: the signed attributes as a DER `SET OF` (RFC 5652 §5.4: the
/// EXPLICIT SET OF tag, not the IMPLICIT [0] of the SignerInfo).
pub fn signed_attributes_der(attrs: &Attributes) -> Result<Vec<u8>> {
    attrs.to_der().map_err(der_err)
}

/// A detached SignedData (no eContent) with the signer's certificate (and the intermediate CA
/// certificates, so that a verifier needs only the root) and one SignerInfo
/// identified by issuer and serial number (version 1, RFC 5652 §5.3).
pub fn signed_data(
    alg: SignAlg,
    cert: &Certificate,
    intermediates: &[Certificate],
    attrs: Attributes,
    signature: Vec<u8>,
) -> Result<SignedData> {
    let tbs = cert.tbs_certificate();
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: alg.digest.identifier(),
        signed_attrs: Some(attrs),
        signature_algorithm: alg.signature_identifier()?,
        signature: OctetString::new(signature).map_err(der_err)?,
        unsigned_attrs: None,
    };
    let mut digests = SetOfVec::new();
    digests.insert(alg.digest.identifier()).map_err(der_err)?;
    let mut certs = SetOfVec::new();
    for c in std::iter::once(cert).chain(intermediates) {
        certs
            .insert(CertificateChoices::Certificate(c.clone()))
            .map_err(der_err)?;
    }
    let mut infos = SetOfVec::new();
    infos.insert(signer).map_err(der_err)?;
    Ok(SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(infos),
    })
}

fn header(tag: Tag, len: usize) -> Result<Vec<u8>> {
    let len = Length::try_from(len).map_err(|_| {
        CliError::new("the content is too large for a CMS signature (more than 4 GiB)")
    })?;
    Header::new(tag, len).to_der().map_err(der_err)
}

/// Write the ContentInfo of `sd` to `out`: detached as is, or with the content of `content`
/// (`len` bytes) as eContent, copied from the file in chunks so that a large file never sits in
/// memory. The lengths are definite (DER), computed up front.
pub fn write_content_info(
    out: &mut dyn Write,
    sd: &SignedData,
    content: Option<(&Path, u64)>,
) -> Result<()> {
    let io = |e: std::io::Error| CliError::new(format!("writing the signature: {e}"));
    let Some((path, len)) = content else {
        let ci = ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(sd).map_err(der_err)?,
        };
        return out.write_all(&ci.to_der().map_err(der_err)?).map_err(io);
    };
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, certificates,
    // crls, signerInfos }: the detached encoding, with a new encapContentInfo in the middle.
    let detached = sd.to_der().map_err(der_err)?;
    let mut r = SliceReader::new(&detached).map_err(der_err)?;
    let _outer = Header::decode(&mut r).map_err(der_err)?;
    let version = r.tlv_bytes().map_err(der_err)?;
    let digests = r.tlv_bytes().map_err(der_err)?;
    let _eci = r.tlv_bytes().map_err(der_err)?;
    let rest = r.read_slice(r.remaining_len()).map_err(der_err)?;
    let len = usize::try_from(len).map_err(|_| CliError::new("the content is too large"))?;
    // EncapsulatedContentInfo ::= SEQUENCE { eContentType, eContent [0] EXPLICIT OCTET STRING }
    let oid = ID_DATA.to_der().map_err(der_err)?;
    let octet_hdr = header(Tag::OctetString, len)?;
    let explicit_len = octet_hdr.len() + len;
    let explicit_hdr = header(
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(0),
        },
        explicit_len,
    )?;
    let eci_len = oid.len() + explicit_hdr.len() + explicit_len;
    let eci_hdr = header(Tag::Sequence, eci_len)?;
    let sd_len = version.len() + digests.len() + eci_hdr.len() + eci_len + rest.len();
    let sd_hdr = header(Tag::Sequence, sd_len)?;
    let ci_oid = ID_SIGNED_DATA.to_der().map_err(der_err)?;
    let ci_explicit_len = sd_hdr.len() + sd_len;
    let ci_explicit_hdr = header(
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(0),
        },
        ci_explicit_len,
    )?;
    let ci_len = ci_oid.len() + ci_explicit_hdr.len() + ci_explicit_len;
    let ci_hdr = header(Tag::Sequence, ci_len)?;
    for part in [
        &ci_hdr[..],
        &ci_oid,
        &ci_explicit_hdr,
        &sd_hdr,
        version,
        digests,
        &eci_hdr,
        &oid,
        &explicit_hdr,
        &octet_hdr,
    ] {
        out.write_all(part).map_err(io)?;
    }
    let mut f = std::fs::File::open(path)
        .map_err(|e| CliError::new(format!("cannot open {}: {e}", path.display())))?;
    let pb = crate::progress::bytes(
        len as u64,
        format!("copying {} into the signature", path.display()),
    );
    let copied = std::io::copy(&mut pb.wrap_read((&mut f).take(len as u64)), out).map_err(io)?;
    pb.finish_and_clear();
    if copied != len as u64 {
        return Err(CliError::new(format!(
            "{} changed while it was being signed (it is shorter now); nothing valid was written",
            path.display()
        )));
    }
    out.write_all(rest).map_err(io)
}

/// Where an attached signature's content lies in its file, and the SignedData without it.
pub struct AttachedLayout {
    pub sd: SignedData,
    pub content_offset: u64,
    pub content_len: u64,
}

/// Bytes read from the start of a signature file to find the layout: the headers before the
/// content are a few dozen bytes.
const HEAD: u64 = 64 * 1024;

/// What comes before an attached content: its offset and length in the file, and the DER of
/// SignedData's version, digestAlgorithms and eContentType.
type HeadParts = (usize, u64, Vec<u8>, Vec<u8>, Vec<u8>);

/// For a DER signature file with embedded content (definite lengths, as `klyuch sign
/// --attached` and `openssl cms -sign -nodetach` without `-stream` write it): the content's
/// place in the file and the SignedData around it, read without loading the content, so a
/// large attached signature verifies in constant memory. `None` for anything else (detached,
/// PEM, BER): the caller reads the whole file.
pub fn attached_layout(path: &Path) -> Result<Option<AttachedLayout>> {
    use std::io::{Seek, SeekFrom};
    let io = |e: std::io::Error| CliError::new(format!("reading {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut head = Vec::new();
    (&mut f).take(HEAD).read_to_end(&mut head).map_err(io)?;
    let layout = || -> der::Result<Option<HeadParts>> {
        let mut r = SliceReader::new(&head)?;
        let ci = Header::decode(&mut r)?;
        if ci.tag() != Tag::Sequence
            || u64::from(u32::from(ci.length())) + u64::from(u32::from(r.position())) != file_len
        {
            return Ok(None);
        }
        if ObjectIdentifier::decode(&mut r)? != ID_SIGNED_DATA {
            return Ok(None);
        }
        let explicit = Header::decode(&mut r)?;
        let sd = Header::decode(&mut r)?;
        if !explicit.tag().is_context_specific() || sd.tag() != Tag::Sequence {
            return Ok(None);
        }
        let sd_end = u64::from(u32::from(r.position())) + u64::from(u32::from(sd.length()));
        let version = r.tlv_bytes()?.to_vec();
        let digests = r.tlv_bytes()?.to_vec();
        let eci = Header::decode(&mut r)?;
        let eci_start = u64::from(u32::from(r.position()));
        let oid: ObjectIdentifier = ObjectIdentifier::decode(&mut r)?;
        let after_oid = u64::from(u32::from(r.position()));
        if eci.tag() != Tag::Sequence || after_oid == eci_start + u64::from(u32::from(eci.length()))
        {
            return Ok(None); // detached
        }
        let _econtent = Header::decode(&mut r)?;
        let octets = Header::decode(&mut r)?;
        if octets.tag() != Tag::OctetString || octets.is_constructed() {
            return Ok(None);
        }
        let offset = u32::from(r.position()) as usize;
        let len = u64::from(u32::from(octets.length()));
        if offset as u64 + len != eci_start + u64::from(u32::from(eci.length()))
            || sd_end > file_len
        {
            return Ok(None);
        }
        Ok(Some((offset, len, version, digests, oid.to_der()?)))
    };
    let Ok(Some((offset, len, version, digests, oid))) = layout() else {
        return Ok(None);
    };
    // the rest of the SignedData: certificates, CRLs, signerInfos
    f.seek(SeekFrom::Start(offset as u64 + len)).map_err(io)?;
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).map_err(io)?;
    let eci = [header(Tag::Sequence, oid.len())?, oid].concat();
    let body = [version, digests, eci, rest].concat();
    let sd_der = [header(Tag::Sequence, body.len())?, body].concat();
    let sd = SignedData::from_der(&sd_der).map_err(|e| {
        CliError::new(format!(
            "this is not a CMS signature (a ContentInfo with SignedData): {e}"
        ))
    })?;
    Ok(Some(AttachedLayout {
        sd,
        content_offset: offset as u64,
        content_len: len,
    }))
}

/// PEM label of CMS (RFC 7468 §9 notes "CMS" for ContentInfo; OpenSSL reads it).
pub const PEM_LABEL: &str = "CMS";

/// A signature file's DER: PEM (`-----BEGIN CMS-----` or `PKCS7`) is decoded, DER kept.
pub fn read_signature_file(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if data[start..].starts_with(b"-----BEGIN ") {
        let (label, der) = pem_rfc7468::decode_vec(&data[start..])
            .map_err(|e| CliError::new(format!("{} is not valid PEM: {e}", path.display())))?;
        if !matches!(label, "CMS" | "PKCS7") {
            return Err(CliError::new(format!(
                "{} holds a PEM \"{label}\", not a CMS signature",
                path.display()
            )));
        }
        return Ok(der);
    }
    Ok(data)
}

/// The embedded content (eContent) of a SignedData. In BER (OpenSSL's `-stream`) it may be a
/// constructed OCTET STRING, whose segments `der` keeps as the value of the `Any`: they are
/// joined (X.690 §8.7.3).
pub fn embedded_content(sd: &SignedData, ber: bool) -> Result<Option<Vec<u8>>> {
    let Some(any) = &sd.encap_content_info.econtent else {
        return Ok(None);
    };
    if ber && let Some(joined) = ber_segments(any.value()) {
        return Ok(Some(joined));
    }
    let os: OctetString = any
        .decode_as()
        .map_err(|e| CliError::new(format!("the embedded content is not an OCTET STRING: {e}")))?;
    Ok(Some(os.into_bytes().into()))
}

fn ber_segments(v: &[u8]) -> Option<Vec<u8>> {
    let mut r = SliceReader::new_with_encoding_rules(v, der::EncodingRules::Ber).ok()?;
    let mut out = Vec::new();
    while !r.is_finished() {
        if r.remaining_len() == Length::new(2) && r.read_slice(Length::new(2)).ok()? == [0, 0] {
            break; // end-of-contents of the enclosing indefinite length
        }
        let seg = OctetString::decode(&mut r).ok()?;
        out.extend_from_slice(seg.as_bytes());
    }
    (!v.is_empty()).then_some(out)
}

/// Decode a ContentInfo holding SignedData (DER, or BER as some signers write); also says
/// whether it was BER.
pub fn parse_signed_data(der: &[u8]) -> Result<(SignedData, bool)> {
    match parse_signed_data_der(der) {
        Ok(sd) => Ok((sd, false)),
        Err(e) => match parse_signed_data_ber(der) {
            Ok(sd) => Ok((sd, true)),
            Err(_) => Err(e),
        },
    }
}

fn parse_signed_data_ber(der: &[u8]) -> Result<SignedData> {
    let bad = |e: der::Error| CliError::new(format!("not BER: {e}"));
    let ci = ContentInfo::from_ber(der).map_err(bad)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CliError::new("not signed data"));
    }
    SignedData::from_ber(&ci.content.to_der().map_err(bad)?).map_err(bad)
}

fn parse_signed_data_der(der: &[u8]) -> Result<SignedData> {
    let bad = |e: der::Error| {
        CliError::new(format!(
            "this is not a CMS signature (a ContentInfo with SignedData): {e}"
        ))
    };
    let ci = ContentInfo::from_der(der).map_err(bad)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CliError::new(format!(
            "this CMS file holds {} content, not signed data",
            ci.content_type
        )));
    }
    ci.content.decode_as::<SignedData>().map_err(bad)
}
