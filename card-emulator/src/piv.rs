//! The PIV Card Application (NIST SP 800-73-4 Parts 1 and 2, algorithms of SP 800-78-4) with
//! the YubiKey extensions that tools expect from a YubiKey 5 (Yubico "PIV extensions":
//! GET VERSION, GET SERIAL, GET METADATA, SET MANAGEMENT KEY, SET PIN RETRIES, RESET,
//! IMPORT ASYMMETRIC KEY, PIN policy in GENERATE).
//!
//! Section references: "P1 §x" = SP 800-73-4 Part 1, "P2 §x" = SP 800-73-4 Part 2,
//! "78 Table x" = SP 800-78-4, "YK" = Yubico's PIV extension documentation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apdu::{ChainBuffer, Command, Response, ResponseBuffer, sw, trace_command};
use crate::cert;
use crate::crypto::{self, Curve, EcKey, RsaKey, SymAlg};
use crate::store::{CardFile, Store, hexbytes};
use crate::tlv::{self, tlv, tlv_cat};
use crate::vpcd::Card;

/// PIV Card Application AID: NIST RID A0 00 00 03 08, PIX 00 00 10 00 01 00 (P1 §2.2).
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// Shortest right-truncated AID that selects the application: the RID alone. P2 §3.1.1 asks
/// for the AID without its version (9 bytes); ISO/IEC 7816-4 §11.2.2 lets a card select by
/// any right-truncated DF name, and yubico-piv-tool (2.2) selects with `A0 00 00 03 08`,
/// which YubiKeys accept.
const PIV_AID_TRUNCATED_LEN: usize = 5;

/// ATR of a YubiKey 5 NFC over USB CCID (pcsc-tools `smartcard_list.txt`: "Yubico YubiKey 5
/// NFC (PKI)"): T=1, historical bytes in compact-TLV with the card issuer's data "YubiKey",
/// which OpenSC's card-piv.c uses to treat the card as a YubiKey and ask GET VERSION.
pub const YUBIKEY5_NFC_ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

/// Firmware version reported by GET VERSION (YK): 5.4.3, the first line with AES management
/// keys and GET METADATA (YK: "available from 5.3"), still shipping 3DES as the default key.
pub const FIRMWARE_VERSION: [u8; 3] = [5, 4, 3];

/// Factory defaults of a YubiKey (Yubico PIV introduction: "default PIN 123456, PUK 12345678,
/// management key 010203040506070801020304050607080102030405060708").
pub const DEFAULT_PIN: &[u8] = b"123456";
pub const DEFAULT_PUK: &[u8] = b"12345678";
pub const DEFAULT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
/// Retry counters: 3 tries each (YubiKey default; SP 800-73-4 leaves the number to the issuer).
pub const DEFAULT_TRIES: u8 = 3;

/// Key references (P1 §3.5 Table 4b / 78 Table 6-1).
pub mod keyref {
    pub const PIV_PIN: u8 = 0x80;
    pub const PUK: u8 = 0x81;
    pub const GLOBAL_PIN: u8 = 0x00;
    pub const AUTH: u8 = 0x9A;
    pub const MGMT: u8 = 0x9B;
    pub const SIGN: u8 = 0x9C;
    pub const KEY_MGMT: u8 = 0x9D;
    pub const CARD_AUTH: u8 = 0x9E;
    /// Retired key management keys 82..95.
    pub const RETIRED_FIRST: u8 = 0x82;
    pub const RETIRED_LAST: u8 = 0x95;
}

/// Asymmetric algorithm identifiers (78 Table 6-2).
pub mod alg {
    pub const RSA_2048: u8 = 0x07;
    pub const ECC_P256: u8 = 0x11;
    pub const ECC_P384: u8 = 0x14;
}

/// YubiKey PIN policy values (YK, GENERATE tag AA): 1 never, 2 once per session, 3 always.
pub mod pin_policy {
    pub const NEVER: u8 = 1;
    pub const ONCE: u8 = 2;
    pub const ALWAYS: u8 = 3;
}

/// Data object tags (P1 §3 Table 3 / Appendix A).
pub mod tag {
    pub const CARD_AUTH_CERT: u32 = 0x5FC101;
    pub const CHUID: u32 = 0x5FC102;
    pub const FINGERPRINTS: u32 = 0x5FC103;
    pub const AUTH_CERT: u32 = 0x5FC105;
    pub const SECURITY_OBJECT: u32 = 0x5FC106;
    pub const CCC: u32 = 0x5FC107;
    pub const FACIAL_IMAGE: u32 = 0x5FC108;
    pub const PRINTED_INFO: u32 = 0x5FC109;
    pub const SIGN_CERT: u32 = 0x5FC10A;
    pub const KEY_MGMT_CERT: u32 = 0x5FC10B;
    pub const KEY_HISTORY: u32 = 0x5FC10C;
    pub const IRIS_IMAGES: u32 = 0x5FC121;
    pub const PAIRING_CODE: u32 = 0x5FC123;
    pub const DISCOVERY: u32 = 0x7E;
    pub const BIT_GROUP: u32 = 0x7F61;
}

/// The certificate object of a key reference (P1 Table 3; retired 82..95 = 5FC10D..5FC120).
pub fn cert_tag(key: u8) -> Option<u32> {
    match key {
        keyref::AUTH => Some(tag::AUTH_CERT),
        keyref::SIGN => Some(tag::SIGN_CERT),
        keyref::KEY_MGMT => Some(tag::KEY_MGMT_CERT),
        keyref::CARD_AUTH => Some(tag::CARD_AUTH_CERT),
        keyref::RETIRED_FIRST..=keyref::RETIRED_LAST => {
            Some(0x5FC10D + u32::from(key - keyref::RETIRED_FIRST))
        }
        _ => None,
    }
}

fn is_asym_slot(key: u8) -> bool {
    cert_tag(key).is_some()
}

/// Objects readable only after PIN verification (P1 §3 Table 2 "Access Rule for Read":
/// fingerprints, facial image, printed information, iris images, pairing code).
fn needs_pin_to_read(t: u32) -> bool {
    matches!(
        t,
        tag::FINGERPRINTS
            | tag::FACIAL_IMAGE
            | tag::PRINTED_INFO
            | tag::IRIS_IMAGES
            | tag::PAIRING_CODE
    )
}

/// Tags PUT DATA accepts: the 5FC1xx container range of P1 Table 3, BIT group 7F61, and
/// YubiKey's vendor range 5FFFxx (YK: "objects 5FFF00-5FFF15", used e.g. for admin data).
fn writable_tag(t: u32) -> bool {
    (0x5FC101..=0x5FC123).contains(&t) || (0x5FFF00..=0x5FFFFF).contains(&t) || t == tag::BIT_GROUP
}

fn default_pin_policy(key: u8) -> u8 {
    match key {
        // 9C: "PIN always" (P1 §3.2.2: the digital signature key needs the PIN immediately
        // before each use); 9E: no PIN (card authentication, P1 §3.2.4).
        keyref::SIGN => pin_policy::ALWAYS,
        keyref::CARD_AUTH => pin_policy::NEVER,
        _ => pin_policy::ONCE,
    }
}

/// Hex blob for maps in the state file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct Hex(#[serde(with = "hexbytes")] pub Vec<u8>);

/// RSA key as stored.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RsaStored {
    pub n: Hex,
    pub e: Hex,
    pub p: Hex,
    pub q: Hex,
    pub dp: Hex,
    pub dq: Hex,
    pub qinv: Hex,
}

/// One private key in a slot.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StoredKey {
    /// 78 Table 6-2 algorithm identifier.
    pub alg: u8,
    pub pin_policy: u8,
    /// YK touch policy (1 = never); kept for GET METADATA, never enforced.
    pub touch_policy: u8,
    /// YK origin: 1 generated on the card, 2 imported.
    pub origin: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa: Option<RsaStored>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec_pkcs8: Option<Hex>,
}

enum Priv {
    Rsa(RsaKey),
    Ec(EcKey),
}

impl StoredKey {
    fn from_rsa(k: &RsaKey, pin_policy: u8, origin: u8) -> StoredKey {
        StoredKey {
            alg: alg::RSA_2048,
            pin_policy,
            touch_policy: 1,
            origin,
            rsa: Some(RsaStored {
                n: Hex(k.n.clone()),
                e: Hex(k.e.clone()),
                p: Hex(k.p.clone()),
                q: Hex(k.q.clone()),
                dp: Hex(k.dp.clone()),
                dq: Hex(k.dq.clone()),
                qinv: Hex(k.qinv.clone()),
            }),
            ec_pkcs8: None,
        }
    }

    fn from_ec(k: &EcKey, pin_policy: u8, origin: u8) -> StoredKey {
        StoredKey {
            alg: match k.curve {
                Curve::P256 => alg::ECC_P256,
                Curve::P384 => alg::ECC_P384,
            },
            pin_policy,
            touch_policy: 1,
            origin,
            rsa: None,
            ec_pkcs8: Some(Hex(k.pkcs8.clone())),
        }
    }

    fn load(&self) -> Option<Priv> {
        match self.alg {
            alg::RSA_2048 => {
                let r = self.rsa.as_ref()?;
                Some(Priv::Rsa(RsaKey {
                    n: r.n.0.clone(),
                    e: r.e.0.clone(),
                    p: r.p.0.clone(),
                    q: r.q.0.clone(),
                    dp: r.dp.0.clone(),
                    dq: r.dq.0.clone(),
                    qinv: r.qinv.0.clone(),
                }))
            }
            alg::ECC_P256 | alg::ECC_P384 => {
                let curve = if self.alg == alg::ECC_P256 {
                    Curve::P256
                } else {
                    Curve::P384
                };
                EcKey::from_pkcs8(curve, &self.ec_pkcs8.as_ref()?.0)
                    .ok()
                    .map(Priv::Ec)
            }
            _ => None,
        }
    }

    /// Public key in the GENERATE / METADATA encoding (P2 §3.3.2 Table 11: RSA modulus 81,
    /// exponent 82; ECC point 86).
    fn public_tlvs(&self) -> Vec<u8> {
        match self.load() {
            Some(Priv::Rsa(k)) => [tlv(0x81, &k.n), tlv(0x82, &k.e)].concat(),
            Some(Priv::Ec(k)) => tlv(0x86, &k.public),
            None => Vec::new(),
        }
    }
}

/// The card's persistent state.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PivState {
    pub serial: u32,
    #[serde(with = "hexbytes")]
    pub pin: Vec<u8>,
    pub pin_max: u8,
    pub pin_left: u8,
    #[serde(with = "hexbytes")]
    pub puk: Vec<u8>,
    pub puk_max: u8,
    pub puk_left: u8,
    pub mgmt_alg: u8,
    #[serde(with = "hexbytes")]
    pub mgmt_key: Vec<u8>,
    /// Slot (two hex digits, e.g. "9a") -> key.
    pub keys: BTreeMap<String, StoredKey>,
    /// Object tag (hex, e.g. "5fc105") -> contents of its `53` template.
    pub objects: BTreeMap<String, Hex>,
}

impl PivState {
    /// A card straight from the factory: default PIN, PUK and management key, no keys, no
    /// objects.
    pub fn empty(serial: u32) -> PivState {
        PivState {
            serial,
            pin: DEFAULT_PIN.to_vec(),
            pin_max: DEFAULT_TRIES,
            pin_left: DEFAULT_TRIES,
            puk: DEFAULT_PUK.to_vec(),
            puk_max: DEFAULT_TRIES,
            puk_left: DEFAULT_TRIES,
            mgmt_alg: SymAlg::Tdes.id(),
            mgmt_key: DEFAULT_MGMT_KEY.to_vec(),
            keys: BTreeMap::new(),
            objects: BTreeMap::new(),
        }
    }

    fn key(&self, slot: u8) -> Option<&StoredKey> {
        self.keys.get(&format!("{slot:02x}"))
    }

    fn object(&self, t: u32) -> Option<&[u8]> {
        self.objects.get(&format!("{t:x}")).map(|h| h.0.as_slice())
    }

    pub fn set_object(&mut self, t: u32, v: Vec<u8>) {
        if v.is_empty() {
            self.objects.remove(&format!("{t:x}"));
        } else {
            self.objects.insert(format!("{t:x}"), Hex(v));
        }
    }
}

/// CHUID (P1 §3.1.2 Table 9): FASC-N, GUID, expiration date, issuer signature (empty: the
/// card is not issued by a federal issuer), error detection code.
pub fn make_chuid() -> Vec<u8> {
    // FASC-N with agency code 9999, system 9999, credential 999999 (SP 800-73-4 P1 §3.1.2
    // allows it for non-federal issuers; TIG SCEPACS §6 encoding, 25 bytes). The same
    // value Yubico's tools write.
    const FASCN: [u8; 25] = [
        0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58, 0x21,
        0x08, 0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
    ];
    let mut guid = crypto::random(16);
    // RFC 4122 §4.4 version 4 UUID.
    guid[6] = (guid[6] & 0x0F) | 0x40;
    guid[8] = (guid[8] & 0x3F) | 0x80;
    [
        tlv(0x30, &FASCN),
        tlv(0x34, &guid),
        tlv(0x35, b"20491231"),
        tlv(0x3E, &[]),
        tlv(0xFE, &[]),
    ]
    .concat()
}

/// Card Capability Container (P1 §3.1.1 Table 8).
pub fn make_ccc() -> Vec<u8> {
    // Card identifier: GSC-RID A0 00 00 01 16, manufacturer FF, card type 02 (Java Card),
    // 14 bytes card ID.
    let mut card_id = vec![0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02];
    card_id.extend(crypto::random(14));
    [
        tlv(0xF0, &card_id),
        tlv(0xF1, &[0x21]), // capability container version
        tlv(0xF2, &[0x21]), // capability grammar version
        tlv(0xF3, &[]),     // applications CardURL
        tlv(0xF4, &[0x00]), // PKCS#15: not supported
        tlv(0xF5, &[0x10]), // registered data model number
        tlv(0xF6, &[]),     // access control rule table
        tlv(0xF7, &[]),     // card APDUs
        tlv(0xFA, &[]),     // redirection tag
        tlv(0xFB, &[]),     // capability tuples
        tlv(0xFC, &[]),     // status tuples
        tlv(0xFD, &[]),     // next CCC
        tlv(0xFE, &[]),     // error detection code
    ]
    .concat()
}

/// Discovery Object (P1 §3.3.2 Table 18): the PIV AID and the PIN usage policy `40 00` =
/// "PIV Card Application PIN satisfies the PIV access control rules", no global PIN.
fn discovery() -> Vec<u8> {
    [tlv(0x4F, &PIV_AID), tlv(0x5F2F, &[0x40, 0x00])].concat()
}

/// Certificate container (P1 Table 10 etc.): `70` certificate, `71` CertInfo (b0 = gzip
/// compressed, P1 §3.3.1 note), `FE` error detection code.
pub fn cert_object(der: &[u8], compress: bool) -> Vec<u8> {
    let (body, info) = if compress {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(der).expect("in-memory gzip");
        (gz.finish().expect("in-memory gzip"), 0x01)
    } else {
        (der.to_vec(), 0x00)
    };
    [tlv(0x70, &body), tlv(0x71, &[info]), tlv(0xFE, &[])].concat()
}

/// What `--provision` puts on the card.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProvisionOptions {
    /// Also 9D (ECC P-256, certificate stored gzip-compressed) and 9E (ECC P-384).
    pub extra_keys: bool,
}

fn make_cert_for(slot: u8, k: &Priv) -> Result<Vec<u8>, crypto::CryptoError> {
    let (cn, ku) = match slot {
        keyref::AUTH => ("Klyuch PIV Authentication (9A)", 0x80),
        keyref::SIGN => ("Klyuch Digital Signature (9C)", 0xC0),
        keyref::KEY_MGMT => (
            "Klyuch Key Management (9D)",
            if matches!(k, Priv::Rsa(_)) {
                0x20
            } else {
                0x08
            },
        ),
        keyref::CARD_AUTH => ("Klyuch Card Authentication (9E)", 0x80),
        _ => ("Klyuch Retired Key", 0x08),
    };
    let serial = crypto::random(12);
    match k {
        Priv::Rsa(r) => {
            let sig_alg = tlv::der::seq(&[
                &tlv::der::oid("1.2.840.113549.1.1.11"), // sha256WithRSAEncryption (RFC 4055)
                &tlv::der::null(),
            ]);
            cert::self_signed(
                &cert::CertSpec {
                    common_name: cn,
                    organization: Some("Klyuch"),
                    serial: &serial,
                    spki: &r.spki(),
                    sig_alg: &sig_alg,
                    key_usage: ku,
                },
                |tbs| r.sign_pkcs1_sha256(tbs),
            )
        }
        Priv::Ec(e) => {
            let sig_alg = tlv::der::seq(&[&tlv::der::oid(e.curve.sig_oid())]);
            cert::self_signed(
                &cert::CertSpec {
                    common_name: cn,
                    organization: Some("Klyuch"),
                    serial: &serial,
                    spki: &e.spki(),
                    sig_alg: &sig_alg,
                    key_usage: ku,
                },
                |tbs| e.sign_message(tbs),
            )
        }
    }
}

/// Creates the provisioned card of the brief: 9A RSA-2048 and 9C ECC P-256, each with a
/// self-signed certificate, CHUID and CCC, default PIN/PUK/management key.
pub fn provision(serial: u32, opts: ProvisionOptions) -> Result<PivState, String> {
    let mut st = PivState::empty(serial);
    let err = |_| "key generation failed".to_string();
    let put = |st: &mut PivState, slot: u8, k: Priv, compress: bool| -> Result<(), String> {
        let stored = match &k {
            Priv::Rsa(r) => StoredKey::from_rsa(r, default_pin_policy(slot), 1),
            Priv::Ec(e) => StoredKey::from_ec(e, default_pin_policy(slot), 1),
        };
        let der = make_cert_for(slot, &k).map_err(err)?;
        st.keys.insert(format!("{slot:02x}"), stored);
        st.set_object(
            cert_tag(slot).expect("asymmetric slot"),
            cert_object(&der, compress),
        );
        Ok(())
    };
    put(
        &mut st,
        keyref::AUTH,
        Priv::Rsa(RsaKey::generate(2048).map_err(err)?),
        false,
    )?;
    put(
        &mut st,
        keyref::SIGN,
        Priv::Ec(EcKey::generate(Curve::P256).map_err(err)?),
        false,
    )?;
    if opts.extra_keys {
        put(
            &mut st,
            keyref::KEY_MGMT,
            Priv::Ec(EcKey::generate(Curve::P256).map_err(err)?),
            true,
        )?;
        put(
            &mut st,
            keyref::CARD_AUTH,
            Priv::Ec(EcKey::generate(Curve::P384).map_err(err)?),
            false,
        )?;
    }
    st.set_object(tag::CHUID, make_chuid());
    st.set_object(tag::CCC, make_ccc());
    Ok(st)
}

enum MgmtPending {
    /// Card sent E(witness); host must return the witness.
    Witness(Vec<u8>),
    /// Card sent a challenge; host must return E(challenge).
    Challenge(Vec<u8>),
}

/// The card in the reader, with its volatile state.
pub struct Piv {
    pub st: PivState,
    store: Option<Store>,
    atr: Vec<u8>,
    log: bool,
    selected: bool,
    pin_ok: bool,
    /// PIN verified since the last use of a "PIN always" key.
    pin_fresh: bool,
    mgmt_ok: bool,
    mgmt_pending: Option<MgmtPending>,
    chain: ChainBuffer,
    resp: ResponseBuffer,
}

/// Constant-time equality of secrets of public length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A PIN/PUK on the wire: 8 bytes, the value followed by `FF` padding (P2 §2.4.3). Values
/// of 6 to 8 bytes are accepted, any byte but `FF` (YubiKeys accept non-digits too).
fn unpad_pin(block: &[u8]) -> Option<&[u8]> {
    if block.len() != 8 {
        return None;
    }
    let n = block.iter().position(|b| *b == 0xFF).unwrap_or(8);
    if n < 6 || block[n..].iter().any(|b| *b != 0xFF) {
        return None;
    }
    Some(&block[..n])
}

fn pad_pin(pin: &[u8]) -> Vec<u8> {
    let mut v = pin.to_vec();
    v.resize(8, 0xFF);
    v
}

impl Piv {
    pub fn new(st: PivState, store: Option<Store>, atr: Vec<u8>, log: bool) -> Piv {
        Piv {
            st,
            store,
            atr,
            log,
            selected: true,
            pin_ok: false,
            pin_fresh: false,
            mgmt_ok: false,
            mgmt_pending: None,
            chain: ChainBuffer::default(),
            resp: ResponseBuffer::default(),
        }
    }

    fn clear_security(&mut self) {
        self.pin_ok = false;
        self.pin_fresh = false;
        self.mgmt_ok = false;
        self.mgmt_pending = None;
    }

    /// Persists the state; a card that cannot write its memory answers `6F00`.
    fn save(&mut self) -> Result<(), u16> {
        if let Some(store) = &self.store {
            let file = CardFile {
                profile: "piv".into(),
                piv: Some(self.st.clone()),
                gost: None,
            };
            store.save(&file).map_err(|e| {
                eprintln!("klyuch-card-emulator: cannot save state: {e}");
                sw::NO_PRECISE_DIAGNOSIS
            })?;
        }
        Ok(())
    }

    fn dispatch(&mut self, c: &Command) -> Response {
        if c.ins == 0xA4 {
            return self.select(c);
        }
        if !self.selected {
            return sw::INS_NOT_SUPPORTED.into();
        }
        let r = match c.ins {
            0xCB => self.get_data(c),
            0x20 => self.verify(c),
            0x24 => self.change_reference_data(c),
            0x2C => self.reset_retry_counter(c),
            0x87 => self.general_authenticate(c),
            0x47 => self.generate(c),
            0xDB => self.put_data(c),
            // YubiKey extensions (YK).
            0xFD => Ok(Response::ok(FIRMWARE_VERSION.to_vec())),
            0xF8 => Ok(Response::ok(self.st.serial.to_be_bytes().to_vec())),
            0xF7 => self.metadata(c),
            0xFF => self.set_management_key(c),
            0xFA => self.set_pin_retries(c),
            0xFB => self.factory_reset(c),
            0xFE => self.import_key(c),
            _ => Err(sw::INS_NOT_SUPPORTED),
        };
        r.unwrap_or_else(Response::sw)
    }

    /// SELECT (P2 §3.1.1): `00 A4 04 00 Lc AID` -> application property template.
    fn select(&mut self, c: &Command) -> Response {
        if c.p1 != 0x04 {
            return sw::NOT_FOUND.into();
        }
        let aid = &c.data;
        if aid.len() < PIV_AID_TRUNCATED_LEN
            || aid.len() > PIV_AID.len()
            || aid[..] != PIV_AID[..aid.len()]
        {
            // Another application: not on this card; the PIV application stays selected.
            return sw::NOT_FOUND.into();
        }
        self.selected = true;
        self.clear_security();
        // Application property template (P2 §3.1.1 Table 3): 4F PIX of the AID (with
        // version), 79 coexistent tag allocation authority (4F NIST RID), 50 label,
        // AC cryptographic algorithms (80 = 78 Table 6-2 identifiers, 06 00 terminator).
        let mut algs = Vec::new();
        for a in [
            0x03,
            0x08,
            0x0A,
            0x0C,
            alg::RSA_2048,
            alg::ECC_P256,
            alg::ECC_P384,
        ] {
            algs.extend(tlv(0x80, &[a]));
        }
        algs.extend(tlv(0x06, &[]));
        let apt = tlv_cat(
            0x61,
            &[
                &tlv(0x4F, &PIV_AID[5..]),
                &tlv(0x79, &tlv(0x4F, &PIV_AID[..5])),
                &tlv(0x50, b"Klyuch PIV"),
                &tlv(0xAC, &algs),
            ],
        );
        Response::ok(apt)
    }

    /// GET DATA (P2 §3.1.2): `00 CB 3F FF Lc 5C len tag` -> `53 L data` (or `7E`/`7F61`).
    fn get_data(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0x3F || c.p2 != 0xFF {
            return Err(sw::INCORRECT_P1P2);
        }
        let tl = tlv::parse_all(&c.data).map_err(|_| sw::INCORRECT_DATA)?;
        let t = match tl.as_slice() {
            [one] if one.tag == 0x5C && (1..=3).contains(&one.value.len()) => {
                one.value.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b))
            }
            _ => return Err(sw::INCORRECT_DATA),
        };
        if t == tag::DISCOVERY {
            return Ok(Response::ok(tlv(tag::DISCOVERY, &discovery())));
        }
        if needs_pin_to_read(t) && !self.pin_ok {
            return Err(sw::SECURITY_STATUS);
        }
        match self.st.object(t) {
            Some(v) if t == tag::BIT_GROUP => Ok(Response::ok(tlv(tag::BIT_GROUP, v))),
            Some(v) => Ok(Response::ok(tlv(0x53, v))),
            None => Err(sw::NOT_FOUND),
        }
    }

    /// PUT DATA (P2 §3.3.1): `00 DB 3F FF Lc 5C len tag 53 L data`; needs the card
    /// management key. An empty `53` deletes the object (as YubiKeys do).
    fn put_data(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0x3F || c.p2 != 0xFF {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.mgmt_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let tl = tlv::parse_all(&c.data).map_err(|_| sw::INCORRECT_DATA)?;
        let (t, v) = match tl.as_slice() {
            [a, b] if a.tag == 0x5C && b.tag == 0x53 && (1..=3).contains(&a.value.len()) => (
                a.value.iter().fold(0u32, |x, y| (x << 8) | u32::from(*y)),
                b.value,
            ),
            [b] if b.tag == tag::BIT_GROUP => (tag::BIT_GROUP, b.value),
            _ => return Err(sw::INCORRECT_DATA),
        };
        if !writable_tag(t) {
            return Err(sw::INCORRECT_DATA);
        }
        self.st.set_object(t, v.to_vec());
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    fn tries_sw(left: u8) -> u16 {
        if left == 0 {
            sw::AUTH_BLOCKED
        } else {
            sw::VERIFY_FAIL | u16::from(left.min(15))
        }
    }

    /// VERIFY (P2 §3.2.1): `00 20 00 80 08 <PIN block>`; without data: the status;
    /// `00 20 FF 80`: reset the verification.
    fn verify(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p2 != keyref::PIV_PIN {
            // Global PIN (00), OCC (96/97) are not on this card; PUK (81) is never verified
            // alone (P2 §3.2.1: key references allowed for VERIFY).
            return Err(sw::REF_NOT_FOUND);
        }
        match (c.p1, c.data.is_empty()) {
            (0xFF, true) => {
                self.pin_ok = false;
                self.pin_fresh = false;
                return Ok(Response::ok(Vec::new()));
            }
            (0x00, true) => {
                return if self.st.pin_left == 0 {
                    Err(sw::AUTH_BLOCKED)
                } else if self.pin_ok {
                    Ok(Response::ok(Vec::new()))
                } else {
                    Err(Self::tries_sw(self.st.pin_left))
                };
            }
            (0x00, false) => {}
            _ => return Err(sw::INCORRECT_P1P2),
        }
        if unpad_pin(&c.data).is_none() {
            return Err(sw::INCORRECT_DATA);
        }
        if self.st.pin_left == 0 {
            return Err(sw::AUTH_BLOCKED);
        }
        // Count the try before comparing (a card torn mid-command must not give a free try).
        self.pin_ok = false;
        self.pin_fresh = false;
        self.st.pin_left -= 1;
        self.save()?;
        if ct_eq(&c.data, &pad_pin(&self.st.pin)) {
            self.st.pin_left = self.st.pin_max;
            self.save()?;
            self.pin_ok = true;
            self.pin_fresh = true;
            Ok(Response::ok(Vec::new()))
        } else {
            Err(sw::VERIFY_FAIL | u16::from(self.st.pin_left.min(15)))
        }
    }

    /// CHANGE REFERENCE DATA (P2 §3.2.2): `00 24 00 80|81 10 <old> <new>`.
    fn change_reference_data(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0x00 {
            return Err(sw::INCORRECT_P1P2);
        }
        let is_pin = match c.p2 {
            keyref::PIV_PIN => true,
            keyref::PUK => false,
            _ => return Err(sw::REF_NOT_FOUND),
        };
        if c.data.len() != 16 {
            return Err(sw::INCORRECT_DATA);
        }
        let (old, new) = c.data.split_at(8);
        let new_value = unpad_pin(new).ok_or(sw::INCORRECT_DATA)?.to_vec();
        let (left, max, current) = if is_pin {
            (self.st.pin_left, self.st.pin_max, self.st.pin.clone())
        } else {
            (self.st.puk_left, self.st.puk_max, self.st.puk.clone())
        };
        if left == 0 {
            return Err(sw::AUTH_BLOCKED);
        }
        self.set_left(is_pin, left - 1);
        self.save()?;
        if !ct_eq(old, &pad_pin(&current)) {
            if is_pin {
                self.pin_ok = false;
                self.pin_fresh = false;
            }
            return Err(sw::VERIFY_FAIL | u16::from((left - 1).min(15)));
        }
        self.set_left(is_pin, max);
        if is_pin {
            self.st.pin = new_value;
            // The holder just proved the old PIN: the new one counts as verified.
            self.pin_ok = true;
            self.pin_fresh = true;
        } else {
            self.st.puk = new_value;
        }
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    fn set_left(&mut self, is_pin: bool, v: u8) {
        if is_pin {
            self.st.pin_left = v;
        } else {
            self.st.puk_left = v;
        }
    }

    /// RESET RETRY COUNTER (P2 §3.2.3): `00 2C 00 80 10 <PUK> <new PIN>`.
    fn reset_retry_counter(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0x00 {
            return Err(sw::INCORRECT_P1P2);
        }
        if c.p2 != keyref::PIV_PIN {
            return Err(sw::REF_NOT_FOUND);
        }
        if c.data.len() != 16 {
            return Err(sw::INCORRECT_DATA);
        }
        let (puk, new) = c.data.split_at(8);
        let new_pin = unpad_pin(new).ok_or(sw::INCORRECT_DATA)?.to_vec();
        if self.st.puk_left == 0 {
            return Err(sw::AUTH_BLOCKED);
        }
        self.st.puk_left -= 1;
        self.save()?;
        if !ct_eq(puk, &pad_pin(&self.st.puk)) {
            return Err(sw::VERIFY_FAIL | u16::from(self.st.puk_left.min(15)));
        }
        self.st.puk_left = self.st.puk_max;
        self.st.pin = new_pin;
        self.st.pin_left = self.st.pin_max;
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    /// GENERAL AUTHENTICATE (P2 §3.2.4) with the dynamic authentication template `7C`
    /// (P2 Table 7: 80 witness, 81 challenge, 82 response, 85 exponentiation).
    fn general_authenticate(&mut self, c: &Command) -> Result<Response, u16> {
        let (outer, rest) = tlv::parse_one(&c.data).map_err(|_| sw::INCORRECT_DATA)?;
        if outer.tag != 0x7C || !rest.is_empty() {
            return Err(sw::INCORRECT_DATA);
        }
        let items = tlv::parse_all(outer.value).map_err(|_| sw::INCORRECT_DATA)?;
        let get = |t: u32| items.iter().find(|x| x.tag == t).map(|x| x.value);
        if c.p2 == keyref::MGMT {
            return self.mgmt_auth(c.p1, get(0x80), get(0x81), get(0x82));
        }
        if !is_asym_slot(c.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        let key = self.st.key(c.p2).cloned().ok_or(sw::REF_NOT_FOUND)?;
        if key.alg != c.p1 {
            return Err(sw::INCORRECT_P1P2);
        }
        // The request: 82 empty (a response is asked for) plus 81 (data to sign or decrypt)
        // or 85 (the peer's public point for ECDH).
        if get(0x82) != Some(&[][..]) {
            return Err(sw::INCORRECT_DATA);
        }
        let (input, ecdh) = match (get(0x81), get(0x85)) {
            (Some(d), None) => (d, false),
            (None, Some(p)) => (p, true),
            _ => return Err(sw::INCORRECT_DATA),
        };
        match key.pin_policy {
            pin_policy::NEVER => {}
            pin_policy::ALWAYS => {
                if !(self.pin_ok && self.pin_fresh) {
                    return Err(sw::SECURITY_STATUS);
                }
            }
            _ => {
                if !self.pin_ok {
                    return Err(sw::SECURITY_STATUS);
                }
            }
        }
        let out = match key.load().ok_or(sw::NO_PRECISE_DIAGNOSIS)? {
            Priv::Rsa(k) => {
                if ecdh || input.len() != k.modulus_len() {
                    return Err(sw::INCORRECT_DATA);
                }
                k.private_op(input).map_err(|_| sw::INCORRECT_DATA)?
            }
            Priv::Ec(k) => {
                if ecdh {
                    k.ecdh(input).map_err(|_| sw::INCORRECT_DATA)?
                } else {
                    // The hash, left-padded with zeros or truncated to the field length
                    // (78 §3.2 / FIPS 186-4 §6.4: leftmost bits of the hash).
                    let n = k.curve.field_len();
                    let mut h = vec![0u8; n.saturating_sub(input.len())];
                    h.extend_from_slice(&input[..input.len().min(n)]);
                    k.sign_digest(&h).map_err(|_| sw::INCORRECT_DATA)?
                }
            }
        };
        if key.pin_policy == pin_policy::ALWAYS {
            self.pin_fresh = false;
        }
        Ok(Response::ok(tlv(0x7C, &tlv(0x82, &out))))
    }

    /// Card management key authentication (P2 Appendix A.1 / 78 §3.1: challenge-response
    /// with the symmetric key of reference 9B). Both the mutual form (80 empty, then
    /// 80 witness + 81 challenge) and the external form (81 empty, then 82 response).
    fn mgmt_auth(
        &mut self,
        p1: u8,
        witness: Option<&[u8]>,
        challenge: Option<&[u8]>,
        response: Option<&[u8]>,
    ) -> Result<Response, u16> {
        let alg = SymAlg::from_id(self.st.mgmt_alg).ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        if SymAlg::from_id(p1) != Some(alg) {
            return Err(sw::INCORRECT_P1P2);
        }
        let bl = alg.block_len();
        let key = self.st.mgmt_key.clone();
        let pending = self.mgmt_pending.take();
        match (witness, challenge, response) {
            // Step 1 of mutual authentication: the card sends an encrypted witness.
            (Some([]), None, None) => {
                self.mgmt_ok = false;
                let w = crypto::random(bl);
                let enc = alg.crypt_block(&key, &w, true);
                self.mgmt_pending = Some(MgmtPending::Witness(w));
                Ok(Response::ok(tlv(0x7C, &tlv(0x80, &enc))))
            }
            // Step 1 of external authentication: the card sends a challenge.
            (None, Some([]), None) => {
                self.mgmt_ok = false;
                let ch = crypto::random(bl);
                self.mgmt_pending = Some(MgmtPending::Challenge(ch.clone()));
                Ok(Response::ok(tlv(0x7C, &tlv(0x81, &ch))))
            }
            // Step 2 of mutual authentication: decrypted witness (+ host challenge).
            (Some(w), ch, resp) if !w.is_empty() => {
                let Some(MgmtPending::Witness(expected)) = pending else {
                    return Err(sw::CONDITIONS);
                };
                if !ct_eq(w, &expected) {
                    return Err(sw::SECURITY_STATUS);
                }
                match (ch, resp) {
                    (Some(ch), Some([])) | (Some(ch), None) if ch.len() == bl => {
                        self.mgmt_ok = true;
                        let enc = alg.crypt_block(&key, ch, true);
                        Ok(Response::ok(tlv(0x7C, &tlv(0x82, &enc))))
                    }
                    (None, None) => {
                        self.mgmt_ok = true;
                        Ok(Response::ok(Vec::new()))
                    }
                    _ => Err(sw::INCORRECT_DATA),
                }
            }
            // Step 2 of external authentication: the encrypted challenge.
            (None, None, Some(r)) if !r.is_empty() => {
                let Some(MgmtPending::Challenge(ch)) = pending else {
                    return Err(sw::CONDITIONS);
                };
                if r.len() != bl || !ct_eq(&alg.crypt_block(&key, &ch, true), r) {
                    return Err(sw::SECURITY_STATUS);
                }
                self.mgmt_ok = true;
                Ok(Response::ok(Vec::new()))
            }
            _ => Err(sw::INCORRECT_DATA),
        }
    }

    /// GENERATE ASYMMETRIC KEY PAIR (P2 §3.3.2): `00 47 00 <slot> Lc AC L 80 01 <alg>
    /// [AA 01 <pin policy>] [AB 01 <touch policy>]` -> `7F49 L <public key>`.
    fn generate(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0x00 || !is_asym_slot(c.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.mgmt_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let (ac, _) = tlv::parse_one(&c.data).map_err(|_| sw::INCORRECT_DATA)?;
        if ac.tag != 0xAC {
            return Err(sw::INCORRECT_DATA);
        }
        let a = tlv::find(ac.value, 0x80)
            .and_then(|v| v.first().copied())
            .ok_or(sw::INCORRECT_DATA)?;
        let pp = self.policy(ac.value, 0xAA, default_pin_policy(c.p2))?;
        let tp = self.policy(ac.value, 0xAB, 1)?;
        let err = |_| sw::NO_PRECISE_DIAGNOSIS;
        let mut stored = match a {
            alg::RSA_2048 => StoredKey::from_rsa(&RsaKey::generate(2048).map_err(err)?, pp, 1),
            alg::ECC_P256 => StoredKey::from_ec(&EcKey::generate(Curve::P256).map_err(err)?, pp, 1),
            alg::ECC_P384 => StoredKey::from_ec(&EcKey::generate(Curve::P384).map_err(err)?, pp, 1),
            _ => return Err(sw::INCORRECT_DATA),
        };
        stored.touch_policy = tp;
        let public = stored.public_tlvs();
        self.st.keys.insert(format!("{:02x}", c.p2), stored);
        self.save()?;
        Ok(Response::ok(tlv(0x7F49, &public)))
    }

    fn policy(&self, tmpl: &[u8], t: u32, default: u8) -> Result<u8, u16> {
        match tlv::find(tmpl, t) {
            None | Some([0]) => Ok(default),
            Some([v @ 1..=3]) => Ok(*v),
            _ => Err(sw::INCORRECT_DATA),
        }
    }

    /// GET METADATA (YK, 5.3+): `00 F7 00 <ref>` -> 01 algorithm, 02 policy, 03 origin,
    /// 04 public key, 05 default value, 06 retries (total, left).
    fn metadata(&mut self, c: &Command) -> Result<Response, u16> {
        let st = &self.st;
        let out = match c.p2 {
            keyref::PIV_PIN | keyref::PUK => {
                let (v, max, left, def) = if c.p2 == keyref::PIV_PIN {
                    (&st.pin, st.pin_max, st.pin_left, DEFAULT_PIN)
                } else {
                    (&st.puk, st.puk_max, st.puk_left, DEFAULT_PUK)
                };
                [
                    tlv(0x01, &[0xFF]),
                    tlv(0x05, &[u8::from(v.as_slice() == def)]),
                    tlv(0x06, &[max, left]),
                ]
                .concat()
            }
            keyref::MGMT => [
                tlv(0x01, &[st.mgmt_alg]),
                tlv(0x02, &[0x00, 0x01]),
                tlv(
                    0x05,
                    &[u8::from(
                        st.mgmt_alg == SymAlg::Tdes.id() && st.mgmt_key == DEFAULT_MGMT_KEY,
                    )],
                ),
            ]
            .concat(),
            slot if is_asym_slot(slot) => {
                let k = st.key(slot).ok_or(sw::REF_NOT_FOUND)?;
                [
                    tlv(0x01, &[k.alg]),
                    tlv(0x02, &[k.pin_policy, k.touch_policy]),
                    tlv(0x03, &[k.origin]),
                    tlv(0x04, &k.public_tlvs()),
                ]
                .concat()
            }
            _ => return Err(sw::REF_NOT_FOUND),
        };
        Ok(Response::ok(out))
    }

    /// SET MANAGEMENT KEY (YK): `00 FF FF FF|FE Lc <alg> 9B <len> <key>`.
    fn set_management_key(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0xFF || !(c.p2 == 0xFF || c.p2 == 0xFE) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.mgmt_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let d = &c.data;
        if d.len() < 3 || d[1] != keyref::MGMT || usize::from(d[2]) != d.len() - 3 {
            return Err(sw::INCORRECT_DATA);
        }
        let alg = SymAlg::from_id(d[0]).ok_or(sw::INCORRECT_DATA)?;
        if alg.key_len() != d.len() - 3 {
            return Err(sw::INCORRECT_DATA);
        }
        self.st.mgmt_alg = alg.id();
        self.st.mgmt_key = d[3..].to_vec();
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    /// SET PIN RETRIES (YK): `00 FA <PIN tries> <PUK tries>`; needs the management key and
    /// the PIN; sets PIN and PUK back to their defaults.
    fn set_pin_retries(&mut self, c: &Command) -> Result<Response, u16> {
        if !(self.mgmt_ok && self.pin_ok) {
            return Err(sw::SECURITY_STATUS);
        }
        if c.p1 == 0 || c.p2 == 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        self.st.pin_max = c.p1;
        self.st.pin_left = c.p1;
        self.st.puk_max = c.p2;
        self.st.puk_left = c.p2;
        self.st.pin = DEFAULT_PIN.to_vec();
        self.st.puk = DEFAULT_PUK.to_vec();
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    /// RESET (YK): `00 FB 00 00`, allowed only when PIN and PUK are both blocked; back to the
    /// factory state (no keys, no objects, default credentials).
    fn factory_reset(&mut self, _c: &Command) -> Result<Response, u16> {
        if self.st.pin_left != 0 || self.st.puk_left != 0 {
            return Err(sw::CONDITIONS);
        }
        self.st = PivState::empty(self.st.serial);
        self.clear_security();
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    /// IMPORT ASYMMETRIC KEY (YK): `00 FE <alg> <slot> Lc` with RSA CRT components
    /// 01 p, 02 q, 03 dp, 04 dq, 05 qinv (e = 65537) or ECC 06 private scalar;
    /// AA/AB policies.
    fn import_key(&mut self, c: &Command) -> Result<Response, u16> {
        if !is_asym_slot(c.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.mgmt_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let pp = self.policy(&c.data, 0xAA, default_pin_policy(c.p2))?;
        let tp = self.policy(&c.data, 0xAB, 1)?;
        let get = |t| tlv::find(&c.data, t).ok_or(sw::INCORRECT_DATA);
        let mut stored = match c.p1 {
            alg::RSA_2048 => {
                let k = crypto::rsa_from_crt(get(1)?, get(2)?, get(3)?, get(4)?, get(5)?)
                    .map_err(|_| sw::INCORRECT_DATA)?;
                if k.bits() != 2048 {
                    return Err(sw::INCORRECT_DATA);
                }
                StoredKey::from_rsa(&k, pp, 2)
            }
            alg::ECC_P256 | alg::ECC_P384 => {
                let curve = if c.p1 == alg::ECC_P256 {
                    Curve::P256
                } else {
                    Curve::P384
                };
                let k = EcKey::from_scalar(curve, get(6)?).map_err(|_| sw::INCORRECT_DATA)?;
                StoredKey::from_ec(&k, pp, 2)
            }
            _ => return Err(sw::INCORRECT_P1P2),
        };
        stored.touch_policy = tp;
        self.st.keys.insert(format!("{:02x}", c.p2), stored);
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    fn secret_command(raw: &[u8]) -> bool {
        raw.len() > 3
            && (matches!(raw[1], 0x20 | 0x24 | 0x2C | 0xFF | 0xFE)
                || (raw[1] == 0x87 && raw[3] == keyref::MGMT))
    }
}

impl Card for Piv {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn reset(&mut self) {
        self.clear_security();
        self.selected = true;
        self.chain.clear();
        self.resp.clear();
    }

    fn transmit(&mut self, raw: &[u8]) -> Vec<u8> {
        if self.log {
            eprintln!("piv >> {}", trace_command(raw, Self::secret_command(raw)));
        }
        let r = self.process(raw);
        if self.log {
            eprintln!(
                "piv << {} {:04X}",
                if raw.get(1) == Some(&0x87) && raw.get(3) == Some(&keyref::MGMT) {
                    format!("<{} bytes>", r.data.len())
                } else {
                    hex::encode_upper(&r.data)
                },
                r.sw
            );
        }
        r.to_bytes()
    }
}

impl Piv {
    fn process(&mut self, raw: &[u8]) -> Response {
        let cmd = match Command::parse(raw) {
            Ok(c) => c,
            Err(e) => return e.into(),
        };
        if cmd.cla & !0x10 != 0x00 {
            // Secure messaging and logical channels are not offered.
            return sw::CLA_NOT_SUPPORTED.into();
        }
        if cmd.ins == 0xC0 {
            return self.resp.get_response(cmd.le);
        }
        self.resp.clear();
        let cmd = match self.chain.feed(cmd) {
            Ok(Some(c)) => c,
            Ok(None) => return Response::ok(Vec::new()),
            Err(e) => return e.into(),
        };
        let ne = cmd.le.or(Some(if cmd.extended { 65536 } else { 256 }));
        let r = self.dispatch(&cmd);
        self.resp.send(r, ne.map(|n| n.min(65000)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Piv {
        let st = provision(12345678, ProvisionOptions { extra_keys: true }).unwrap();
        Piv::new(st, None, YUBIKEY5_NFC_ATR.to_vec(), false)
    }

    /// Sends an APDU and follows 61xx with GET RESPONSE, as a host does.
    fn tx(c: &mut Piv, apdu: &[u8]) -> (Vec<u8>, u16) {
        let mut r = c.transmit(apdu);
        let mut data = Vec::new();
        loop {
            let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
            data.extend_from_slice(&r[..r.len() - 2]);
            if sw & 0xFF00 != 0x6100 {
                return (data, sw);
            }
            r = c.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]);
        }
    }

    fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![cla, ins, p1, p2, data.len() as u8];
        v.extend_from_slice(data);
        v.push(0);
        v
    }

    fn verify(c: &mut Piv, pin: &[u8]) -> u16 {
        tx(c, &apdu(0, 0x20, 0, 0x80, &pad_pin(pin))).1
    }

    fn mgmt_auth(c: &mut Piv, alg: SymAlg, key: &[u8]) -> u16 {
        let (r, sw) = tx(c, &apdu(0, 0x87, alg.id(), 0x9B, &[0x7C, 0x02, 0x80, 0x00]));
        assert_eq!(sw, 0x9000);
        let enc = tlv::find(tlv::find(&r, 0x7C).unwrap(), 0x80).unwrap();
        let w = alg.crypt_block(key, enc, false);
        let ch = crypto::random(alg.block_len());
        let body = tlv_cat(0x7C, &[&tlv(0x80, &w), &tlv(0x81, &ch), &tlv(0x82, &[])]);
        let (r, sw) = tx(c, &apdu(0, 0x87, alg.id(), 0x9B, &body));
        if sw == 0x9000 {
            let resp = tlv::find(tlv::find(&r, 0x7C).unwrap(), 0x82).unwrap();
            assert_eq!(alg.crypt_block(key, resp, false), ch);
        }
        sw
    }

    #[test]
    fn select_get_data_and_discovery() {
        let mut c = card();
        let (r, sw) = tx(&mut c, &apdu(0, 0xA4, 4, 0, &PIV_AID[..9]));
        assert_eq!(sw, 0x9000);
        assert_eq!(r[0], 0x61);
        assert_eq!(
            tx(&mut c, &apdu(0, 0xA4, 4, 0, &[0xA0, 0, 0, 5, 0x27])).1,
            0x6A82
        );
        let (r, sw) = tx(&mut c, &apdu(0, 0xCB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E]));
        assert_eq!(sw, 0x9000);
        assert_eq!(r[0], 0x7E);
        let (r, sw) = tx(
            &mut c,
            &apdu(0, 0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x05]),
        );
        assert_eq!(sw, 0x9000);
        let obj = tlv::find(&r, 0x53).unwrap();
        assert_eq!(tlv::find(obj, 0x71), Some(&[0u8][..]));
        // 9D is stored compressed: CertInfo 01 and a gzip stream.
        let (r, _) = tx(
            &mut c,
            &apdu(0, 0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x0B]),
        );
        let obj = tlv::find(&r, 0x53).unwrap();
        assert_eq!(tlv::find(obj, 0x71), Some(&[1u8][..]));
        assert_eq!(&tlv::find(obj, 0x70).unwrap()[..2], &[0x1F, 0x8B]);
        // Printed information needs the PIN even to learn that it is absent.
        let pi = [0x5C, 3, 0x5F, 0xC1, 0x09];
        assert_eq!(tx(&mut c, &apdu(0, 0xCB, 0x3F, 0xFF, &pi)).1, 0x6982);
        assert_eq!(verify(&mut c, b"123456"), 0x9000);
        assert_eq!(tx(&mut c, &apdu(0, 0xCB, 0x3F, 0xFF, &pi)).1, 0x6A82);
    }

    #[test]
    fn pin_counter_block_and_unblock() {
        let mut c = card();
        let status = [0x00, 0x20, 0x00, 0x80];
        assert_eq!(tx(&mut c, &status).1, 0x63C3);
        assert_eq!(verify(&mut c, b"111111"), 0x63C2);
        assert_eq!(tx(&mut c, &status).1, 0x63C2);
        assert_eq!(verify(&mut c, b"123456"), 0x9000);
        assert_eq!(tx(&mut c, &status).1, 0x9000);
        assert_eq!(tx(&mut c, &[0x00, 0x20, 0xFF, 0x80]).1, 0x9000);
        assert_eq!(tx(&mut c, &status).1, 0x63C3);
        assert_eq!(verify(&mut c, b"111111"), 0x63C2);
        assert_eq!(verify(&mut c, b"111111"), 0x63C1);
        assert_eq!(verify(&mut c, b"111111"), 0x63C0);
        assert_eq!(verify(&mut c, b"123456"), 0x6983);
        assert_eq!(tx(&mut c, &status).1, 0x6983);
        // Malformed block: rejected without spending a try.
        assert_eq!(tx(&mut c, &apdu(0, 0x20, 0, 0x80, b"12345")).1, 0x6A80);
        // Wrong PUK, then the right one.
        let rrc = |puk: &[u8]| {
            apdu(
                0,
                0x2C,
                0,
                0x80,
                &[pad_pin(puk), pad_pin(b"654321")].concat(),
            )
        };
        assert_eq!(tx(&mut c, &rrc(b"00000000")).1, 0x63C2);
        assert_eq!(tx(&mut c, &rrc(b"12345678")).1, 0x9000);
        assert_eq!(verify(&mut c, b"654321"), 0x9000);
        // CHANGE REFERENCE DATA for the PIN and the PUK.
        let crd = apdu(
            0,
            0x24,
            0,
            0x80,
            &[pad_pin(b"654321"), pad_pin(b"123456")].concat(),
        );
        assert_eq!(tx(&mut c, &crd).1, 0x9000);
        assert_eq!(verify(&mut c, b"123456"), 0x9000);
        let crd = apdu(
            0,
            0x24,
            0,
            0x81,
            &[pad_pin(b"12345678"), pad_pin(b"87654321")].concat(),
        );
        assert_eq!(tx(&mut c, &crd).1, 0x9000);
        assert_eq!(c.st.puk, b"87654321");
    }

    #[test]
    fn signatures_and_pin_policies() {
        let mut c = card();
        let hash = [0x11u8; 32];
        let ga = |slot: u8, alg: u8, data: &[u8]| {
            let body = tlv_cat(0x7C, &[&tlv(0x82, &[]), &tlv(0x81, data)]);
            let mut v = vec![0x00, 0x87, alg, slot, 0x00];
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
            v.extend_from_slice(&body);
            v.extend_from_slice(&[0, 0]);
            v
        };
        assert_eq!(tx(&mut c, &ga(0x9C, alg::ECC_P256, &hash)).1, 0x6982);
        assert_eq!(verify(&mut c, b"123456"), 0x9000);
        let (r, sw) = tx(&mut c, &ga(0x9C, alg::ECC_P256, &hash));
        assert_eq!(sw, 0x9000);
        let sig = tlv::find(tlv::find(&r, 0x7C).unwrap(), 0x82).unwrap();
        assert_eq!(sig[0], 0x30);
        // 9C: PIN always -> a second signature needs a new VERIFY; 9A: once is enough.
        assert_eq!(tx(&mut c, &ga(0x9C, alg::ECC_P256, &hash)).1, 0x6982);
        let mut block = vec![0u8; 256];
        block[1] = 1;
        assert_eq!(tx(&mut c, &ga(0x9A, alg::RSA_2048, &block)).1, 0x9000);
        assert_eq!(tx(&mut c, &ga(0x9A, alg::RSA_2048, &block)).1, 0x9000);
        // Wrong algorithm for the slot; 9E needs no PIN.
        assert_eq!(tx(&mut c, &ga(0x9A, alg::ECC_P256, &hash)).1, 0x6A86);
        c.reset();
        assert_eq!(tx(&mut c, &ga(0x9E, alg::ECC_P384, &[0x22; 48])).1, 0x9000);
        // Same request as two chained short APDUs (CLA 10).
        assert_eq!(verify(&mut c, b"123456"), 0x9000);
        let body = tlv_cat(0x7C, &[&tlv(0x82, &[]), &tlv(0x81, &block)]);
        let (a, b) = body.split_at(200);
        assert_eq!(tx(&mut c, &apdu(0x10, 0x87, 7, 0x9A, a)).1, 0x9000);
        let (r, sw) = tx(&mut c, &apdu(0x00, 0x87, 7, 0x9A, b));
        assert_eq!(sw, 0x9000);
        assert_eq!(
            tlv::find(tlv::find(&r, 0x7C).unwrap(), 0x82).unwrap().len(),
            256
        );
    }

    #[test]
    fn ecdh_on_9d() {
        let mut c = card();
        let peer = EcKey::generate(Curve::P256).unwrap();
        let body = tlv_cat(0x7C, &[&tlv(0x82, &[]), &tlv(0x85, &peer.public)]);
        let cmd = apdu(0, 0x87, alg::ECC_P256, 0x9D, &body);
        assert_eq!(tx(&mut c, &cmd).1, 0x6982);
        assert_eq!(verify(&mut c, b"123456"), 0x9000);
        let (r, sw) = tx(&mut c, &cmd);
        assert_eq!(sw, 0x9000);
        let z = tlv::find(tlv::find(&r, 0x7C).unwrap(), 0x82).unwrap();
        let k9d = c.st.key(0x9D).unwrap().load().unwrap();
        let Priv::Ec(k9d) = k9d else { panic!() };
        assert_eq!(peer.ecdh(&k9d.public).unwrap(), z);
    }

    #[test]
    fn management_key_generate_put_data_and_aes_keys() {
        let mut c = card();
        let gen_cmd = apdu(0, 0x47, 0, 0x9D, &[0xAC, 0x03, 0x80, 0x01, alg::ECC_P384]);
        assert_eq!(tx(&mut c, &gen_cmd).1, 0x6982);
        assert_eq!(mgmt_auth(&mut c, SymAlg::Tdes, &[9; 24]), 0x6982);
        assert_eq!(mgmt_auth(&mut c, SymAlg::Tdes, &DEFAULT_MGMT_KEY), 0x9000);
        let (r, sw) = tx(&mut c, &gen_cmd);
        assert_eq!(sw, 0x9000);
        assert_eq!(
            tlv::find(tlv::find(&r, 0x7F49).unwrap(), 0x86)
                .unwrap()
                .len(),
            97
        );
        let (r, sw) = tx(
            &mut c,
            &apdu(0, 0x47, 0, 0x9A, &[0xAC, 0x03, 0x80, 0x01, alg::RSA_2048]),
        );
        assert_eq!(sw, 0x9000);
        let pk = tlv::find(&r, 0x7F49).unwrap();
        assert_eq!(tlv::find(pk, 0x81).unwrap().len(), 256);
        assert_eq!(tlv::find(pk, 0x82).unwrap(), &[1, 0, 1]);
        // PUT DATA of a key history object, read back.
        let kh = [0xC1, 0x01, 0x00, 0xC2, 0x01, 0x00, 0xFE, 0x00];
        let put = [&[0x5C, 0x03, 0x5F, 0xC1, 0x0C][..], &tlv(0x53, &kh)].concat();
        assert_eq!(tx(&mut c, &apdu(0, 0xDB, 0x3F, 0xFF, &put)).1, 0x9000);
        let (r, _) = tx(
            &mut c,
            &apdu(0, 0xCB, 0x3F, 0xFF, &[0x5C, 3, 0x5F, 0xC1, 0x0C]),
        );
        assert_eq!(tlv::find(&r, 0x53).unwrap(), &kh);
        // Switch to AES-128, -192, -256 management keys (YubiKey SET MANAGEMENT KEY).
        for alg in [SymAlg::Aes128, SymAlg::Aes192, SymAlg::Aes256] {
            let key = crypto::random(alg.key_len());
            let mut d = vec![alg.id(), 0x9B, key.len() as u8];
            d.extend_from_slice(&key);
            assert_eq!(tx(&mut c, &apdu(0, 0xFF, 0xFF, 0xFF, &d)).1, 0x9000);
            c.reset();
            assert_eq!(tx(&mut c, &gen_cmd).1, 0x6982);
            assert_eq!(mgmt_auth(&mut c, alg, &key), 0x9000);
            let (m, _) = tx(&mut c, &[0, 0xF7, 0, 0x9B, 0]);
            assert_eq!(tlv::find(&m, 0x01), Some(&[alg.id()][..]));
        }
        // External authentication form: 81 empty, then 82 = E(challenge).
        let key = c.st.mgmt_key.clone();
        let alg = SymAlg::Aes256;
        c.reset();
        let (r, sw) = tx(
            &mut c,
            &apdu(0, 0x87, alg.id(), 0x9B, &[0x7C, 0x02, 0x81, 0x00]),
        );
        assert_eq!(sw, 0x9000);
        let ch = tlv::find(tlv::find(&r, 0x7C).unwrap(), 0x81)
            .unwrap()
            .to_vec();
        let resp = tlv(0x7C, &tlv(0x82, &alg.crypt_block(&key, &ch, true)));
        assert_eq!(tx(&mut c, &apdu(0, 0x87, alg.id(), 0x9B, &resp)).1, 0x9000);
        assert_eq!(tx(&mut c, &gen_cmd).1, 0x9000);
    }

    #[test]
    fn yubikey_version_serial_metadata() {
        let mut c = card();
        assert_eq!(tx(&mut c, &[0, 0xFD, 0, 0, 0]), (vec![5, 4, 3], 0x9000));
        assert_eq!(
            tx(&mut c, &[0, 0xF8, 0, 0, 0]),
            (12345678u32.to_be_bytes().to_vec(), 0x9000)
        );
        let (m, sw) = tx(&mut c, &[0, 0xF7, 0, 0x80, 0]);
        assert_eq!(sw, 0x9000);
        assert_eq!(tlv::find(&m, 0x06), Some(&[3u8, 3][..]));
        assert_eq!(tlv::find(&m, 0x05), Some(&[1u8][..]));
        let (m, _) = tx(&mut c, &[0, 0xF7, 0, 0x9C, 0]);
        assert_eq!(tlv::find(&m, 0x01), Some(&[alg::ECC_P256][..]));
        assert_eq!(tlv::find(&m, 0x02), Some(&[pin_policy::ALWAYS, 1][..]));
        assert_eq!(tx(&mut c, &[0, 0xF7, 0, 0x82, 0]).1, 0x6A88);
    }

    #[test]
    fn factory_reset_only_when_blocked() {
        let mut c = card();
        assert_eq!(tx(&mut c, &[0, 0xFB, 0, 0]).1, 0x6985);
        for _ in 0..3 {
            verify(&mut c, b"000000");
        }
        for _ in 0..3 {
            tx(
                &mut c,
                &apdu(
                    0,
                    0x2C,
                    0,
                    0x80,
                    &[pad_pin(b"00000000"), pad_pin(b"123456")].concat(),
                ),
            );
        }
        assert_eq!(tx(&mut c, &[0, 0xFB, 0, 0]).1, 0x9000);
        assert!(c.st.keys.is_empty());
        assert_eq!(verify(&mut c, b"123456"), 0x9000);
    }
}
