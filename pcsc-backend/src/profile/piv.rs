//! PIV (NIST SP 800-73-4 Parts 1 and 2, algorithms from SP 800-78-4): YubiKey and most PIV
//! cards.
//!
//! Objects, labels and `CKA_ID`s follow OpenSC's `pkcs15-piv.c` so that scripts and
//! PKCS#11 URIs written for OpenSC keep working: 9A → ID `01`, 9C → `02`, 9D → `03`,
//! 9E → `04`. Keys appear when their certificate is on the card (PIV has no standard way to read
//! a public key) or after `C_GenerateKeyPair` in this process.
//!
//! PKCS#11 roles: the user PIN is the PIV Card Application PIN (key reference `80`); the SO PIN
//! is the PUK (`81`). `C_Login(CKU_SO, puk)` checks the PUK with CHANGE REFERENCE DATA from the
//! PUK to itself (a wrong PUK spends a try exactly as a VERIFY would; PIV does not allow VERIFY
//! on `81`), then the token remembers it for `C_InitPIN` (RESET RETRY COUNTER) until logout.
//!
//! The card management key (`9B`) is needed for key generation and certificate writes. It
//! comes from, in order: the mechanism parameter of `C_GenerateKeyPair` (24 bytes = 3DES, or
//! 16/24/32 bytes AES as a vendor extension), the `KLYUCH_PIV_MGMT_KEY` environment variable
//! (hex), or the well-known default 3DES key `010203040506070801020304050607080102030405060708`
//! (YubiKey factory default; SP 800-73-4 defines none). 24-byte keys are tried as 3DES and then
//! as AES-192 (YubiKey 5.7 and later ship an AES-192 default with the same bytes).

use super::{
    AdminAuth, AtrMatch, Caps, CardCert, CardIdent, CardKey, CardProfile, Contents, KeySpec,
    PinRole, PinStatus, pin_block,
};
use crate::apdu::{CardError, CardResult, Command, Sw, hex_upper};
use crate::host::{self, KeyKind};
use crate::pinpad::PinFormat;
use crate::tlv;
use crate::transport::Channel;
use std::io::Read;
use subtle::ConstantTimeEq;
use token_api::ck::*;
use token_api::{Error, Pin, Template};
use zeroize::Zeroizing;

/// PIV Card Application AID, right-truncated (SP 800-73-4 Part 1 §2.2 and Part 2 §3.1.1: the
/// PIX `00 00 10 00` with the version `01 00` omitted may be used for SELECT).
pub const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00];

/// Key references (SP 800-73-4 Part 1 §5.1, Table 4b).
pub const KEY_PIV_AUTH: u8 = 0x9A;
pub const KEY_SIGNATURE: u8 = 0x9C;
pub const KEY_MANAGEMENT: u8 = 0x9D;
pub const KEY_CARD_AUTH: u8 = 0x9E;
pub const KEY_ADMIN: u8 = 0x9B;
/// PIN references (Part 1 Table 4a... Part 2 §3.2.1): application PIN `80`, PUK `81`.
pub const PIN_APP: u8 = 0x80;
pub const PIN_PUK: u8 = 0x81;

/// Data object tags (SP 800-73-4 Part 1 Table 3).
pub const TAG_CHUID: u32 = 0x5FC102;

/// Cryptographic mechanism identifiers (SP 800-78-4 Table 6-2).
pub const ALG_3DES: u8 = 0x03;
pub const ALG_RSA_1024: u8 = 0x06;
pub const ALG_RSA_2048: u8 = 0x07;
pub const ALG_AES_128: u8 = 0x08;
pub const ALG_AES_192: u8 = 0x0A;
pub const ALG_AES_256: u8 = 0x0C;
pub const ALG_ECC_P256: u8 = 0x11;
pub const ALG_ECC_P384: u8 = 0x14;

/// Default management key (Yubico "PIV introduction": 010203040506070801020304050607080102030405060708).
pub const DEFAULT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// One key slot: key reference, certificate container tag, OpenSC's ID and labels.
struct Slot {
    key_ref: u8,
    tag: u32,
    id: u8,
    cert_label: &'static str,
    key_label: &'static str,
    pub_label: &'static str,
}

/// The four standard slots (container tags: Part 1 Table 3; labels: OpenSC `pkcs15-piv.c`).
const SLOTS: &[Slot] = &[
    Slot {
        key_ref: KEY_PIV_AUTH,
        tag: 0x5FC105,
        id: 1,
        cert_label: "Certificate for PIV Authentication",
        key_label: "PIV AUTH key",
        pub_label: "PIV AUTH pubkey",
    },
    Slot {
        key_ref: KEY_SIGNATURE,
        tag: 0x5FC10A,
        id: 2,
        cert_label: "Certificate for Digital Signature",
        key_label: "SIGN key",
        pub_label: "SIGN pubkey",
    },
    Slot {
        key_ref: KEY_MANAGEMENT,
        tag: 0x5FC10B,
        id: 3,
        cert_label: "Certificate for Key Management",
        key_label: "KEY MGMT key",
        pub_label: "KEY MGMT pubkey",
    },
    Slot {
        key_ref: KEY_CARD_AUTH,
        tag: 0x5FC101,
        id: 4,
        cert_label: "Certificate for Card Authentication",
        key_label: "CARD AUTH key",
        pub_label: "CARD AUTH pubkey",
    },
];

fn slot_by_ref(r: u8) -> Option<&'static Slot> {
    SLOTS.iter().find(|s| s.key_ref == r)
}

fn slot_by_id(id: &[u8]) -> Option<&'static Slot> {
    match id {
        [b] => SLOTS.iter().find(|s| s.id == *b || s.key_ref == *b),
        _ => None,
    }
}

pub struct Piv;

fn get_data(ch: &mut Channel<'_>, tag: u32) -> CardResult<Option<Zeroizing<Vec<u8>>>> {
    // GET DATA (Part 2 §3.1.2): 00 CB 3F FF, data 5C <len> <tag>.
    let t = tag.to_be_bytes();
    let cmd = Command::new(0x00, 0xCB, 0x3F, 0xFF)
        .data(vec![0x5C, 0x03, t[1], t[2], t[3]])
        .le(256);
    let r = ch.send(&cmd)?;
    match r.sw {
        Sw::Ok => {
            // The object comes wrapped in tag 53 (Part 2 §3.1.2).
            let (o, _) = tlv::read(&r.data).ok_or(CardError::Malformed("GET DATA"))?;
            if o.tag != 0x53 {
                return Err(CardError::Malformed("GET DATA without tag 53"));
            }
            Ok(Some(Zeroizing::new(o.value.to_vec())))
        }
        Sw::NotFound => Ok(None),
        sw => Err(CardError::Sw(sw)),
    }
}

fn put_data(ch: &mut Channel<'_>, tag: u32, content: &[u8]) -> CardResult<()> {
    // PUT DATA (Part 2 §3.3.1): 00 DB 3F FF, data 5C 03 <tag> 53 <len> <content>.
    let t = tag.to_be_bytes();
    let mut data = vec![0x5C, 0x03, t[1], t[2], t[3]];
    data.extend(tlv::encode(0x53, content));
    ch.ok(&Command::new(0x00, 0xDB, 0x3F, 0xFF).data(data))?;
    Ok(())
}

/// The certificate in a certificate container (Part 1 Appendix A, "X.509 Certificate for ...":
/// `70` certificate, `71` CertInfo, `FE` error detection code). CertInfo bit 0 set = the
/// certificate is gzip-compressed (Part 1 Table 10, "CertInfo").
pub fn cert_from_container(content: &[u8]) -> CardResult<Vec<u8>> {
    let cert = tlv::find(content, 0x70).ok_or(CardError::Malformed("no certificate tag 70"))?;
    let info = tlv::find(content, 0x71)
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    if info & 0x01 != 0 {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(cert)
            .take(64 * 1024)
            .read_to_end(&mut out)
            .map_err(|_| CardError::Malformed("bad gzip certificate"))?;
        Ok(out)
    } else {
        Ok(cert.to_vec())
    }
}

fn alg_of(kind: KeyKind) -> CardResult<u8> {
    Ok(match kind {
        KeyKind::Rsa { bits: 2048 } => ALG_RSA_2048,
        KeyKind::Rsa { bits: 1024 } => ALG_RSA_1024,
        KeyKind::EcP256 => ALG_ECC_P256,
        KeyKind::EcP384 => ALG_ECC_P384,
        _ => {
            return Err(CardError::Ck(Error::with(
                CKR_KEY_TYPE_INCONSISTENT,
                "PIV supports RSA 1024/2048 and ECC P-256/P-384",
            )));
        }
    })
}

/// GENERAL AUTHENTICATE (Part 2 §3.2.4): dynamic authentication template `7C` with a
/// "response" `82 00` request and the input under `tag` (`81` challenge, `85` exponentiation);
/// returns the content of `82` in the answer.
fn general_authenticate(
    ch: &mut Channel<'_>,
    alg: u8,
    key_ref: u8,
    tag: u32,
    input: &[u8],
    secret_out: bool,
) -> CardResult<Zeroizing<Vec<u8>>> {
    let mut inner = vec![0x82, 0x00];
    inner.extend(tlv::encode(tag, input));
    let mut cmd = Command::new(0x00, 0x87, alg, key_ref)
        .data(tlv::encode(0x7C, &inner))
        .le(256);
    if secret_out {
        cmd = cmd.secret_response();
    }
    let r = ch.ok(&cmd)?;
    let (t, _) = tlv::read(&r).ok_or(CardError::Malformed("GENERAL AUTHENTICATE"))?;
    if t.tag != 0x7C {
        return Err(CardError::Malformed("GENERAL AUTHENTICATE without 7C"));
    }
    let out = tlv::find(t.value, 0x82).ok_or(CardError::Malformed("no response tag 82"))?;
    Ok(Zeroizing::new(out.to_vec()))
}

/// Block cipher ECB on one block with the management key.
fn mgmt_block(alg: u8, key: &[u8], block: &[u8], encrypt: bool) -> Option<Vec<u8>> {
    use des::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
    fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
        key: &[u8],
        block: &[u8],
        encrypt: bool,
    ) -> Option<Vec<u8>> {
        let c = C::new_from_slice(key).ok()?;
        let mut b = Block::<C>::try_from(block).ok()?;
        if encrypt {
            c.encrypt_block(&mut b);
        } else {
            c.decrypt_block(&mut b);
        }
        Some(b.to_vec())
    }
    match alg {
        ALG_3DES => run::<des::TdesEde3>(key, block, encrypt),
        ALG_AES_128 => run::<aes::Aes128>(key, block, encrypt),
        ALG_AES_192 => run::<aes::Aes192>(key, block, encrypt),
        ALG_AES_256 => run::<aes::Aes256>(key, block, encrypt),
        _ => None,
    }
}

/// Authenticate as the PIV Card Application Administrator (key `9B`) with mutual
/// authentication (Part 2 §3.2.4 with Appendix A.1 "witness" / "challenge": `80` witness,
/// `81` challenge, `82` response), as yubico-piv-tool does.
fn admin_authenticate(ch: &mut Channel<'_>, auth: &AdminAuth) -> CardResult<()> {
    let key: Zeroizing<Vec<u8>> = match &auth.management_key {
        Some(k) => k.clone(),
        None => Zeroizing::new(DEFAULT_MGMT_KEY.to_vec()),
    };
    let algs: &[u8] = match key.len() {
        16 => &[ALG_AES_128],
        24 => &[ALG_3DES, ALG_AES_192],
        32 => &[ALG_AES_256],
        _ => {
            return Err(CardError::Ck(Error::with(
                CKR_MECHANISM_PARAM_INVALID,
                "PIV management key must be 16, 24 or 32 bytes",
            )));
        }
    };
    let mut last = CardError::Sw(Sw::SecurityStatusNotSatisfied);
    for &alg in algs {
        let bs = if alg == ALG_3DES { 8 } else { 16 };
        // 1. request a witness
        let cmd = Command::new(0x00, 0x87, alg, KEY_ADMIN)
            .data(tlv::encode(0x7C, &[0x80, 0x00]))
            .le(256);
        let r = ch.send(&cmd)?;
        if !r.sw.is_ok() {
            last = CardError::Sw(r.sw);
            continue;
        }
        let (t, _) = tlv::read(&r.data).ok_or(CardError::Malformed("witness"))?;
        let witness = tlv::find(t.value, 0x80).ok_or(CardError::Malformed("witness 80"))?;
        if witness.len() != bs {
            last = CardError::Malformed("witness length");
            continue;
        }
        let decrypted = Zeroizing::new(
            mgmt_block(alg, &key, witness, false).ok_or(CardError::Malformed("key"))?,
        );
        let mut challenge = vec![0u8; bs];
        getrandom::fill(&mut challenge).map_err(|_| CardError::Malformed("no random"))?;
        // 2. return the decrypted witness, send our challenge
        // The decrypted witness proves we hold the key: wiped after use like the key.
        let mut inner = Zeroizing::new(tlv::encode(0x80, &decrypted));
        inner.extend(tlv::encode(0x81, &challenge));
        inner.extend([0x82, 0x00]);
        let cmd = Command::new(0x00, 0x87, alg, KEY_ADMIN)
            .data(tlv::encode(0x7C, &inner))
            .le(256)
            .sensitive();
        let r = ch.send(&cmd)?;
        if !r.sw.is_ok() {
            last = CardError::Sw(r.sw);
            continue;
        }
        let (t, _) = tlv::read(&r.data).ok_or(CardError::Malformed("auth response"))?;
        let resp = tlv::find(t.value, 0x82).ok_or(CardError::Malformed("auth response 82"))?;
        let expected =
            mgmt_block(alg, &key, &challenge, true).ok_or(CardError::Malformed("key"))?;
        // Constant-time: a fake card must not learn the expected answer byte by byte.
        if resp.len() != expected.len() || !bool::from(resp.ct_eq(expected.as_slice())) {
            return Err(CardError::Ck(Error::with(
                CKR_DEVICE_ERROR,
                "the card failed management key authentication",
            )));
        }
        return Ok(());
    }
    Err(match last {
        CardError::Sw(Sw::SecurityStatusNotSatisfied) | CardError::Sw(Sw::IncorrectData) => {
            CardError::Ck(Error::with(CKR_PIN_INCORRECT, "wrong PIV management key"))
        }
        other => other,
    })
}

fn pin_ref(role: PinRole) -> u8 {
    match role {
        PinRole::User => PIN_APP,
        PinRole::So => PIN_PUK,
    }
}

impl CardProfile for Piv {
    fn name(&self) -> &'static str {
        "piv"
    }

    fn atr_match(&self, atr: &[u8]) -> AtrMatch {
        // The GOST token announces itself in its historical bytes (gost-card.md "ATR").
        if atr.windows(11).any(|w| w == b"KLYUCH-GOST") {
            AtrMatch::No
        } else {
            AtrMatch::Maybe
        }
    }

    fn probe(&self, ch: &mut Channel<'_>) -> CardResult<bool> {
        // SELECT by AID (Part 2 §3.1.1): answer is the application property template `61`.
        let r = ch.send(&Command::new(0x00, 0xA4, 0x04, 0x00).data(AID).le(256))?;
        Ok(r.sw.is_ok())
    }

    fn identify(&self, ch: &mut Channel<'_>) -> CardResult<CardIdent> {
        // CHUID (Part 1 Table 9): 30 FASC-N, 34 GUID.
        let chuid = get_data(ch, TAG_CHUID)?;
        let (fascn, guid) = match &chuid {
            Some(c) => (
                tlv::find(c, 0x30).map(<[u8]>::to_vec),
                tlv::find(c, 0x34).map(<[u8]>::to_vec),
            ),
            None => (None, None),
        };
        let unique = match (&guid, &fascn) {
            (Some(g), _) if g.iter().any(|&b| b != 0) => g.clone(),
            (_, Some(f)) => f.clone(),
            _ => Vec::new(),
        };
        let serial = if unique.is_empty() {
            String::new()
        } else {
            hex_upper(&unique[unique.len().saturating_sub(8)..])
        };
        Ok(CardIdent {
            label: "PIV card".into(),
            manufacturer: "PIV".into(),
            model: "PIV II".into(),
            serial,
            unique,
        })
    }

    fn read_contents(&self, ch: &mut Channel<'_>) -> CardResult<Contents> {
        let mut c = Contents::default();
        for s in SLOTS {
            let Some(content) = get_data(ch, s.tag)? else {
                continue;
            };
            let der = match cert_from_container(&content) {
                Ok(d) => d,
                Err(e) => {
                    log::warn!("PIV slot {:02X}: {e}", s.key_ref);
                    continue;
                }
            };
            // The key's public half comes from the certificate's SubjectPublicKeyInfo.
            let spki = match klyuch_crypto::x509::certificate_attributes(&der) {
                Ok(a) => a.get(CKA_PUBLIC_KEY_INFO).unwrap_or_default().to_vec(),
                Err(e) => {
                    log::warn!("PIV slot {:02X}: certificate: {e}", s.key_ref);
                    continue;
                }
            };
            c.certs.push(CardCert {
                id: vec![s.id],
                label: s.cert_label.into(),
                der,
            });
            match host::public_key_from_spki(&spki) {
                Ok((public, kind)) => c.keys.push(key_for(s, kind, public, false)),
                Err(e) => log::warn!("PIV slot {:02X}: {e}", s.key_ref),
            }
        }
        Ok(c)
    }

    fn caps(&self) -> Caps {
        Caps {
            rsa: true,
            ec: true,
            gost: false,
            decrypt: true,
            derive: true,
            keygen: true,
            write_cert: true,
        }
    }

    fn pin_len(&self) -> (usize, usize) {
        // PIN 6-8 (Part 2 §3.2.1 / FIPS 201-3 §4.3.1); the PUK is 8 bytes of any value.
        (6, 8)
    }

    fn pin_format(&self, role: PinRole) -> Option<PinFormat> {
        let r = pin_ref(role);
        Some(PinFormat {
            verify_header: [0x00, 0x20, 0x00, r],
            change_header: [0x00, 0x24, 0x00, r],
            block_len: 8,
            pad: 0xFF,
            min_len: 6,
            max_len: 8,
        })
    }

    fn pin_status(&self, ch: &mut Channel<'_>, role: PinRole) -> CardResult<Option<PinStatus>> {
        // YubiKey GET METADATA (Yubico "PIV: metadata", firmware 5.3+): `00 F7 00 <ref>` answers
        // tag 06 = (total tries, tries left) for the PIN and the PUK, so the token knows the
        // counter's maximum (CKF_*_PIN_COUNT_LOW in a fresh process) and the PUK's state.
        let r = ch.send(&Command::new(0x00, 0xF7, 0x00, pin_ref(role)).le(256))?;
        if r.sw.is_ok() {
            if let Some(&[total, left]) = tlv::find(&r.data, 0x06) {
                return Ok(Some(PinStatus {
                    verified: false,
                    tries_left: Some(left),
                    blocked: left == 0,
                    max_tries: Some(total),
                }));
            }
        }
        if role == PinRole::So {
            return Ok(None); // PUK: no VERIFY on 81 (Part 2 §3.2.1)
        }
        // Other PIV cards: VERIFY without data (Part 2 §3.2.1) tells the tries left.
        let r = ch.send(&Command::new(0x00, 0x20, 0x00, PIN_APP))?;
        PinStatus::from_sw(r.sw).map(Some)
    }

    fn verify_pin(&self, ch: &mut Channel<'_>, role: PinRole, pin: &Pin) -> CardResult<()> {
        match role {
            PinRole::User => {
                let block = pin_block(pin.expose(), 8, 0xFF, 1)?;
                ch.ok(&Command::new(0x00, 0x20, 0x00, PIN_APP)
                    .data(block.to_vec())
                    .sensitive())?;
                Ok(())
            }
            // Check the PUK by changing it to itself (see the module docs).
            PinRole::So => self.change_pin(ch, PinRole::So, pin, pin),
        }
    }

    fn logout(&self, ch: &mut Channel<'_>) -> CardResult<()> {
        // VERIFY with P1 = FF resets the PIN's security status (Part 2 §3.2.1).
        let r = ch.send(&Command::new(0x00, 0x20, 0xFF, PIN_APP))?;
        if !r.sw.is_ok() {
            log::debug!("PIV logout answered {}", r.sw);
        }
        Ok(())
    }

    fn change_pin(
        &self,
        ch: &mut Channel<'_>,
        role: PinRole,
        old: &Pin,
        new: &Pin,
    ) -> CardResult<()> {
        // CHANGE REFERENCE DATA (Part 2 §3.2.2): old || new, each an 8-byte FF-padded block.
        let min = if role == PinRole::User { 6 } else { 1 };
        let mut data = pin_block(old.expose(), 8, 0xFF, 1)?;
        data.extend_from_slice(&pin_block(new.expose(), 8, 0xFF, min)?);
        ch.ok(&Command::new(0x00, 0x24, 0x00, pin_ref(role))
            .data(data.to_vec())
            .sensitive())?;
        Ok(())
    }

    fn unblock_pin(&self, ch: &mut Channel<'_>, puk: &Pin, new: &Pin) -> CardResult<()> {
        // RESET RETRY COUNTER (Part 2 §3.2.3): PUK || new PIN, each 8 bytes FF-padded.
        let mut data = pin_block(puk.expose(), 8, 0xFF, 1)?;
        data.extend_from_slice(&pin_block(new.expose(), 8, 0xFF, 6)?);
        ch.ok(&Command::new(0x00, 0x2C, 0x00, PIN_APP)
            .data(data.to_vec())
            .sensitive())?;
        Ok(())
    }

    fn sign(&self, ch: &mut Channel<'_>, key: &CardKey, input: &[u8]) -> CardResult<Vec<u8>> {
        let alg = alg_of(key.kind)?;
        let out = general_authenticate(ch, alg, key.card_ref, 0x81, input, false)?;
        match key.kind {
            KeyKind::Rsa { .. } => Ok(out.to_vec()),
            KeyKind::EcP256 => {
                host::ecdsa_der_to_raw(&out, 32).ok_or(CardError::Malformed("ECDSA signature"))
            }
            KeyKind::EcP384 => {
                host::ecdsa_der_to_raw(&out, 48).ok_or(CardError::Malformed("ECDSA signature"))
            }
            _ => Err(CardError::Malformed("key kind")),
        }
    }

    fn decrypt(
        &self,
        ch: &mut Channel<'_>,
        key: &CardKey,
        input: &[u8],
    ) -> CardResult<Zeroizing<Vec<u8>>> {
        let alg = alg_of(key.kind)?;
        general_authenticate(ch, alg, key.card_ref, 0x81, input, true)
    }

    fn derive(
        &self,
        ch: &mut Channel<'_>,
        key: &CardKey,
        peer: &[u8],
    ) -> CardResult<Zeroizing<Vec<u8>>> {
        // Key establishment (Part 2 §3.2.4, Appendix A.5): `85` = the peer's public point.
        let alg = alg_of(key.kind)?;
        general_authenticate(ch, alg, key.card_ref, 0x85, peer, true)
    }

    fn key_ref_for_id(&self, id: Option<&[u8]>, contents: &Contents) -> CardResult<(u8, Vec<u8>)> {
        let slot = match id {
            Some(id) => slot_by_id(id).ok_or(CardError::Ck(Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "PIV CKA_ID must be 01..04 (or the key reference 9A/9C/9D/9E)",
            )))?,
            None => SLOTS
                .iter()
                .find(|s| !contents.keys.iter().any(|k| k.card_ref == s.key_ref))
                .ok_or(CardError::Ck(Error::new(CKR_DEVICE_MEMORY)))?,
        };
        Ok((slot.key_ref, vec![slot.id]))
    }

    fn generate(
        &self,
        ch: &mut Channel<'_>,
        card_ref: u8,
        _id: &[u8],
        spec: &KeySpec,
        admin: &AdminAuth,
    ) -> CardResult<CardKey> {
        let slot = slot_by_ref(card_ref).ok_or(CardError::Malformed("slot"))?;
        let (alg, kind) = match spec {
            KeySpec::Rsa { bits: 2048 } => (ALG_RSA_2048, KeyKind::Rsa { bits: 2048 }),
            KeySpec::EcP256 => (ALG_ECC_P256, KeyKind::EcP256),
            KeySpec::EcP384 => (ALG_ECC_P384, KeyKind::EcP384),
            _ => {
                return Err(CardError::Ck(Error::with(
                    CKR_KEY_SIZE_RANGE,
                    "PIV generates RSA-2048, P-256 and P-384 keys",
                )));
            }
        };
        admin_authenticate(ch, admin)?;
        // GENERATE ASYMMETRIC KEY PAIR (Part 2 §3.3.2): AC { 80 alg } → 7F49 { 81 n, 82 e | 86 Q }.
        let tmpl = tlv::encode(0xAC, &[0x80, 0x01, alg]);
        let r = ch.ok(&Command::new(0x00, 0x47, 0x00, card_ref).data(tmpl).le(256))?;
        let (pk, _) = tlv::read(&r).ok_or(CardError::Malformed("7F49"))?;
        if pk.tag != 0x7F49 {
            return Err(CardError::Malformed("no public key template 7F49"));
        }
        let mut public = Template::new();
        public.set_ulong(CKA_KEY_TYPE, kind.key_type());
        match kind {
            KeyKind::Rsa { bits } => {
                let n = tlv::find(pk.value, 0x81).ok_or(CardError::Malformed("modulus"))?;
                let e = tlv::find(pk.value, 0x82).ok_or(CardError::Malformed("exponent"))?;
                public.set(CKA_MODULUS, host::unsigned(n));
                public.set(CKA_PUBLIC_EXPONENT, host::unsigned(e));
                public.set_ulong(CKA_MODULUS_BITS, bits as CK_ULONG);
            }
            _ => {
                let q = tlv::find(pk.value, 0x86).ok_or(CardError::Malformed("point"))?;
                let params = kind.ec_params().ok_or(CardError::Malformed("curve"))?;
                public.set(CKA_EC_PARAMS, params.to_vec());
                public.set(CKA_EC_POINT, host::octet_string(q)?);
            }
        }
        // The key must be usable on the host (verification, CKA_PUBLIC_KEY_INFO).
        host::public_key_info(&public).map_err(|_| CardError::Malformed("generated public key"))?;
        Ok(key_for(slot, kind, public, true))
    }

    fn write_certificate(
        &self,
        ch: &mut Channel<'_>,
        id: &[u8],
        der: &[u8],
        admin: &AdminAuth,
    ) -> CardResult<CardCert> {
        let slot = slot_by_id(id).ok_or(CardError::Ck(Error::with(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "PIV CKA_ID must be 01..04",
        )))?;
        admin_authenticate(ch, admin)?;
        // Certificate container (Part 1 Appendix A): 70 cert, 71 CertInfo = 00 (uncompressed),
        // FE error detection code (empty).
        let mut content = tlv::encode(0x70, der);
        content.extend([0x71, 0x01, 0x00, 0xFE, 0x00]);
        put_data(ch, slot.tag, &content)?;
        Ok(CardCert {
            id: vec![slot.id],
            label: slot.cert_label.into(),
            der: der.to_vec(),
        })
    }
}

fn key_for(s: &Slot, kind: KeyKind, public: Template, local: bool) -> CardKey {
    let is_rsa = matches!(kind, KeyKind::Rsa { .. });
    CardKey {
        id: vec![s.id],
        card_ref: s.key_ref,
        kind,
        label: s.key_label.into(),
        pub_label: s.pub_label.into(),
        public,
        // 9D is the key management key: decryption (RSA) or key agreement (ECC) only
        // (SP 800-73-4 Part 1 §3.2.4 / Table 4b usage).
        sign: s.key_ref != KEY_MANAGEMENT,
        decrypt: is_rsa && (s.key_ref == KEY_MANAGEMENT || s.key_ref == KEY_PIV_AUTH),
        derive: !is_rsa && s.key_ref == KEY_MANAGEMENT,
        // PIN "always" for the digital signature key (SP 800-73-4 Part 1 §3.2.2: "the PIN must
        // be explicitly entered before each use").
        always_authenticate: s.key_ref == KEY_SIGNATURE,
        login_required: s.key_ref != KEY_CARD_AUTH,
        local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_certificates_are_inflated() {
        use std::io::Write;
        let cert = b"\x30\x03\x02\x01\x05".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&cert).unwrap();
        let z = gz.finish().unwrap();
        let mut content = tlv::encode(0x70, &z);
        content.extend([0x71, 0x01, 0x01, 0xFE, 0x00]);
        assert_eq!(cert_from_container(&content).unwrap(), cert);
        let mut plain = tlv::encode(0x70, &cert);
        plain.extend([0x71, 0x01, 0x00]);
        assert_eq!(cert_from_container(&plain).unwrap(), cert);
    }

    #[test]
    fn management_key_blocks() {
        // 3DES with K1=K2=K3 is single DES: FIPS 46-3 / NBS test vector
        // key 0123456789ABCDEF, plaintext "Now is t" (4E6F772069732074) → 3FA40E8A984D4815.
        let k: Vec<u8> = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF].repeat(3);
        let c = mgmt_block(ALG_3DES, &k, b"Now is t", true).unwrap();
        assert_eq!(hex_upper(&c), "3FA40E8A984D4815");
        assert_eq!(mgmt_block(ALG_3DES, &k, &c, false).unwrap(), b"Now is t");
        assert!(mgmt_block(ALG_AES_128, &[0; 16], &[0; 16], true).is_some());
    }
}
