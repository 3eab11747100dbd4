//! The GOST token: GOST R 34.10-2012 keys driven by ISO 7816-4/-8 commands, as specified in
//! `docs/gost-card.md` (the contract with `klyuch-card-emulator --profile gost`). Section names
//! in the comments below refer to that page.
//!
//! PKCS#11 roles: user PIN = PIN reference `01`, SO PIN = admin PIN `02` (verified on the card
//! at `C_Login(CKU_SO)`; `C_InitPIN` then runs RESET RETRY COUNTER).

use super::{
    AdminAuth, AtrMatch, Caps, CardCert, CardIdent, CardKey, CardProfile, Contents, KeySpec,
    PinRole, PinStatus, pin_block,
};
use crate::apdu::{CardError, CardResult, Command, Sw, hex_upper};
use crate::host::{self, KeyKind};
use crate::tlv;
use crate::transport::Channel;
use token_api::ck::*;
use token_api::{Error, Pin, Template};

/// Application identifier ("ATR and application").
pub const AID: &[u8] = &[
    0xD6, 0x43, 0x00, 0x00, 0x4B, 0x4C, 0x59, 0x47, 0x4F, 0x53, 0x54,
];
/// Key directory EF ("Files").
pub const FID_KEYDIR: u16 = 0x4B01;
/// Certificate EF of key n is `CE00 + n` ("Files").
pub const FID_CERT_BASE: u16 = 0xCE00;
/// PIN references ("PINs").
pub const PIN_USER: u8 = 0x01;
pub const PIN_ADMIN: u8 = 0x02;
/// PIN block length and padding ("PINs").
pub const PIN_BLOCK: usize = 16;
/// Algorithm bytes of the key directory ("Key directory").
pub const ALG_256: u8 = 0x01;
pub const ALG_512: u8 = 0x02;
/// Maximum certificate file size ("Files", UPDATE BINARY).
pub const MAX_CERT: usize = 4096;

pub struct GostToken;

fn pin_ref(role: PinRole) -> u8 {
    match role {
        PinRole::User => PIN_USER,
        PinRole::So => PIN_ADMIN,
    }
}

/// SELECT EF with FCP (P2 = 04); `None` when absent. Returns the file size from tag 80.
fn select_ef(ch: &mut Channel<'_>, fid: u16) -> CardResult<Option<usize>> {
    let r = ch.send(
        &Command::new(0x00, 0xA4, 0x02, 0x04)
            .data(fid.to_be_bytes().to_vec())
            .le(256),
    )?;
    match r.sw {
        Sw::Ok => {
            let (fcp, _) = tlv::read(&r.data).ok_or(CardError::Malformed("FCP"))?;
            let size = tlv::find(fcp.value, 0x80).ok_or(CardError::Malformed("FCP size"))?;
            // docs/gost-card.md "SELECT EF": tag 80 holds the size in two bytes (ISO/IEC 7816-4
            // FCP tag 80, number of data bytes), and READ BINARY takes offsets below 0x8000. A
            // card that says more is refused, never believed: the size was once taken as is,
            // and six size bytes made the host allocate 93 TB and abort (found by
            // fuzz/fuzz_targets/card_answers.rs).
            let size = match *size {
                [b] => usize::from(b),
                [hi, lo] => usize::from(u16::from_be_bytes([hi, lo])),
                _ => return Err(CardError::Malformed("FCP size")),
            };
            if size > MAX_EF_SIZE {
                return Err(CardError::Malformed("EF larger than READ BINARY reaches"));
            }
            Ok(Some(size))
        }
        Sw::NotFound => Ok(None),
        sw => Err(CardError::Sw(sw)),
    }
}

/// The largest EF READ BINARY reaches: offsets are below 0x8000 (docs/gost-card.md, "READ
/// BINARY"; ISO/IEC 7816-4: P1 bit 8 = 0, a 15-bit offset).
const MAX_EF_SIZE: usize = 0x7FFF;

/// READ BINARY the whole current EF of `size` bytes (at most [`MAX_EF_SIZE`]) in 256-byte steps.
fn read_binary(ch: &mut Channel<'_>, size: usize) -> CardResult<Vec<u8>> {
    let size = size.min(MAX_EF_SIZE);
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let off = u16::try_from(out.len()).map_err(|_| CardError::Malformed("EF offset"))?;
        let want = u16::try_from((size - out.len()).min(256)).unwrap_or(256);
        let [hi, lo] = off.to_be_bytes();
        let d = ch.ok(&Command::new(0x00, 0xB0, hi, lo).le(want))?;
        if d.is_empty() {
            break;
        }
        out.extend_from_slice(&d);
    }
    Ok(out)
}

fn read_file(ch: &mut Channel<'_>, fid: u16) -> CardResult<Option<Vec<u8>>> {
    match select_ef(ch, fid)? {
        Some(0) => Ok(Some(Vec::new())),
        Some(size) => read_binary(ch, size).map(Some),
        None => Ok(None),
    }
}

fn kind_of(alg: u8) -> Option<KeyKind> {
    match alg {
        ALG_256 => Some(KeyKind::Gost256),
        ALG_512 => Some(KeyKind::Gost512),
        _ => None,
    }
}

/// Public key attributes of a key directory record or a generated key: the parameter set OID
/// (content octets, as the card's BER-TLV carries it) as `CKA_GOSTR3410_PARAMS`, Streebog of the
/// key's size as `CKA_GOSTR3411_PARAMS`, and `X_le || Y_le` as `CKA_VALUE` (gost-pkcs11.md §2.2).
fn public_template(kind: KeyKind, paramset: &[u8], value: &[u8]) -> CardResult<Template> {
    let mut t = Template::new();
    t.set_ulong(CKA_KEY_TYPE, kind.key_type());
    t.set(
        CKA_GOSTR3410_PARAMS,
        host::oid_der_from_content(paramset).ok_or(CardError::Malformed("parameter set OID"))?,
    );
    t.set(CKA_GOSTR3411_PARAMS, host::streebog_oid_der(kind));
    t.set(CKA_VALUE, value.to_vec());
    Ok(t)
}

fn key(card_ref: u8, kind: KeyKind, public: Template, local: bool) -> CardKey {
    let bits = kind.bits();
    CardKey {
        id: vec![card_ref],
        card_ref,
        kind,
        label: format!("GOST R 34.10-2012 {bits} key {card_ref}"),
        pub_label: format!("GOST R 34.10-2012 {bits} public key {card_ref}"),
        public,
        sign: true,
        decrypt: false,
        derive: false,
        always_authenticate: false,
        login_required: true,
        local,
    }
}

/// Parse the key directory ("Key directory": records `A0 { 84 ref, 80 alg, 06 oid, 86 X||Y }`).
pub fn parse_key_directory(data: &[u8]) -> CardResult<Vec<CardKey>> {
    let mut keys = Vec::new();
    for rec in tlv::parse_all(data) {
        if rec.tag != 0xA0 {
            continue;
        }
        let r = tlv::find(rec.value, 0x84).and_then(|v| v.first().copied());
        let alg = tlv::find(rec.value, 0x80).and_then(|v| v.first().copied());
        let oid = tlv::find(rec.value, 0x06);
        let pubv = tlv::find(rec.value, 0x86);
        let (Some(r), Some(alg), Some(oid), Some(pubv)) = (r, alg, oid, pubv) else {
            return Err(CardError::Malformed("key directory record"));
        };
        let kind = kind_of(alg).ok_or(CardError::Malformed("key algorithm"))?;
        if pubv.len() != kind.sig_len() {
            return Err(CardError::Malformed("public key length"));
        }
        keys.push(key(r, kind, public_template(kind, oid, pubv)?, false));
    }
    Ok(keys)
}

impl CardProfile for GostToken {
    fn name(&self) -> &'static str {
        "gost"
    }

    fn atr_match(&self, atr: &[u8]) -> AtrMatch {
        if atr.windows(12).any(|w| w == b"KLYUCH-GOST1") {
            AtrMatch::Yes
        } else {
            AtrMatch::Maybe
        }
    }

    fn probe(&self, ch: &mut Channel<'_>) -> CardResult<bool> {
        let r = ch.send(&Command::new(0x00, 0xA4, 0x04, 0x0C).data(AID))?;
        Ok(r.sw.is_ok())
    }

    fn identify(&self, ch: &mut Channel<'_>) -> CardResult<CardIdent> {
        // "Identification": GET DATA 00 CA 01 81 → 8-byte serial.
        let serial = ch.ok(&Command::new(0x00, 0xCA, 0x01, 0x81).le(256))?;
        Ok(CardIdent {
            label: "GOST token".into(),
            manufacturer: "Klyuch".into(),
            model: "GOST R 34.10-2012".into(),
            serial: hex_upper(&serial),
            unique: serial.to_vec(),
        })
    }

    fn read_contents(&self, ch: &mut Channel<'_>) -> CardResult<Contents> {
        let dir = read_file(ch, FID_KEYDIR)?.unwrap_or_default();
        let keys = parse_key_directory(&dir)?;
        let mut certs = Vec::new();
        for k in &keys {
            if let Some(der) = read_file(ch, FID_CERT_BASE + u16::from(k.card_ref))? {
                if !der.is_empty() {
                    certs.push(CardCert {
                        id: k.id.clone(),
                        label: format!("GOST certificate {}", k.card_ref),
                        der,
                    });
                }
            }
        }
        Ok(Contents { keys, certs })
    }

    fn caps(&self) -> Caps {
        Caps {
            gost: true,
            keygen: true,
            write_cert: true,
            ..Caps::default()
        }
    }

    fn pin_len(&self) -> (usize, usize) {
        (4, 16)
    }

    fn max_tries(&self, _role: PinRole) -> Option<u8> {
        Some(10)
    }

    // No PIN-pad format: a 16-byte block does not fit the 4-bit bmPINBlockString of PC/SC
    // Part 10 §2.5.2 (see docs/gost-card.md, "PINs").

    fn pin_status(&self, ch: &mut Channel<'_>, role: PinRole) -> CardResult<Option<PinStatus>> {
        let r = ch.send(&Command::new(0x00, 0x20, 0x00, pin_ref(role)))?;
        PinStatus::from_sw(r.sw).map(Some)
    }

    fn verify_pin(&self, ch: &mut Channel<'_>, role: PinRole, pin: &Pin) -> CardResult<()> {
        let block = pin_block(pin.expose(), PIN_BLOCK, 0xFF, 4)?;
        ch.ok(&Command::new(0x00, 0x20, 0x00, pin_ref(role))
            .data(block.to_vec())
            .sensitive())?;
        Ok(())
    }

    fn logout(&self, ch: &mut Channel<'_>) -> CardResult<()> {
        for r in [PIN_USER, PIN_ADMIN] {
            let resp = ch.send(&Command::new(0x00, 0x20, 0xFF, r))?;
            if !resp.sw.is_ok() {
                log::debug!("GOST logout {r:02X} answered {}", resp.sw);
            }
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
        let mut data = pin_block(old.expose(), PIN_BLOCK, 0xFF, 4)?;
        data.extend_from_slice(&pin_block(new.expose(), PIN_BLOCK, 0xFF, 4)?);
        ch.ok(&Command::new(0x00, 0x24, 0x00, pin_ref(role))
            .data(data.to_vec())
            .sensitive())?;
        Ok(())
    }

    fn unblock_pin(&self, ch: &mut Channel<'_>, _admin: &Pin, new: &Pin) -> CardResult<()> {
        let block = pin_block(new.expose(), PIN_BLOCK, 0xFF, 4)?;
        ch.ok(&Command::new(0x00, 0x2C, 0x02, PIN_USER)
            .data(block.to_vec())
            .sensitive())?;
        Ok(())
    }

    fn sign(&self, ch: &mut Channel<'_>, key: &CardKey, digest: &[u8]) -> CardResult<Vec<u8>> {
        // "Signing": MSE:SET DST with the key reference, then PSO: COMPUTE DIGITAL SIGNATURE.
        ch.ok(&Command::new(0x00, 0x22, 0x41, 0xB6).data(vec![0x84, 0x01, key.card_ref]))?;
        let sig = ch.ok(&Command::new(0x00, 0x2A, 0x9E, 0x9A)
            .data(digest.to_vec())
            .le(256))?;
        if sig.len() != key.kind.sig_len() {
            return Err(CardError::Malformed("signature length"));
        }
        Ok(sig.to_vec())
    }

    fn key_ref_for_id(&self, id: Option<&[u8]>, contents: &Contents) -> CardResult<(u8, Vec<u8>)> {
        let r = match id {
            Some([r @ 1..=8]) => *r,
            Some(_) => {
                return Err(CardError::Ck(Error::with(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    "GOST token CKA_ID must be one byte 01..08",
                )));
            }
            None => (1..=8u8)
                .find(|r| !contents.keys.iter().any(|k| k.card_ref == *r))
                .ok_or(CardError::Ck(Error::new(CKR_DEVICE_MEMORY)))?,
        };
        Ok((r, vec![r]))
    }

    fn generate(
        &self,
        ch: &mut Channel<'_>,
        card_ref: u8,
        _id: &[u8],
        spec: &KeySpec,
        _admin: &AdminAuth,
    ) -> CardResult<CardKey> {
        let (alg, kind, paramset) = match spec {
            KeySpec::Gost256 { paramset } => (ALG_256, KeyKind::Gost256, paramset),
            KeySpec::Gost512 { paramset } => (ALG_512, KeyKind::Gost512, paramset),
            _ => return Err(CardError::Ck(Error::new(CKR_MECHANISM_INVALID))),
        };
        // "Key generation": AC { 80 alg, 06 oid } → 7F49 { 86 X_le || Y_le }.
        let mut inner = vec![0x80, 0x01, alg];
        inner.extend(tlv::encode(0x06, paramset));
        let r = ch.ok(&Command::new(0x00, 0x46, 0x00, card_ref)
            .data(tlv::encode(0xAC, &inner))
            .le(256))?;
        let (pk, _) = tlv::read(&r).ok_or(CardError::Malformed("7F49"))?;
        let q = tlv::find(pk.value, 0x86).ok_or(CardError::Malformed("public key 86"))?;
        if pk.tag != 0x7F49 || q.len() != kind.sig_len() {
            return Err(CardError::Malformed("public key template"));
        }
        Ok(key(
            card_ref,
            kind,
            public_template(kind, paramset, q)?,
            true,
        ))
    }

    fn write_certificate(
        &self,
        ch: &mut Channel<'_>,
        id: &[u8],
        der: &[u8],
        _admin: &AdminAuth,
    ) -> CardResult<CardCert> {
        let r = match id {
            [r @ 1..=8] => *r,
            _ => {
                return Err(CardError::Ck(Error::with(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    "GOST token CKA_ID must be one byte 01..08",
                )));
            }
        };
        if der.len() > MAX_CERT {
            return Err(CardError::Ck(Error::new(CKR_DEVICE_MEMORY)));
        }
        let fid = FID_CERT_BASE + u16::from(r);
        ch.ok(&Command::new(0x00, 0xA4, 0x02, 0x0C).data(fid.to_be_bytes().to_vec()))?;
        ch.ok(&Command::new(0x00, 0x0E, 0x00, 0x00))?;
        for (i, chunk) in der.chunks(255).enumerate() {
            let [hi, lo] = ((i * 255) as u16).to_be_bytes();
            ch.ok(&Command::new(0x00, 0xD6, hi, lo).data(chunk.to_vec()))?;
        }
        Ok(CardCert {
            id: vec![r],
            label: format!("GOST certificate {r}"),
            der: der.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_directory_parses() {
        let oid = [0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x01, 0x02];
        let mut rec = vec![0x84, 0x01, 0x01, 0x80, 0x01, 0x01];
        rec.extend(tlv::encode(0x06, &oid));
        rec.extend(tlv::encode(0x86, &[7u8; 64]));
        let dir = tlv::encode(0xA0, &rec);
        let keys = parse_key_directory(&dir).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kind, KeyKind::Gost256);
        assert_eq!(keys[0].id, vec![1]);
        assert_eq!(
            keys[0].public.get(CKA_GOSTR3410_PARAMS).unwrap(),
            &host::oid_der_from_content(&oid).unwrap()[..]
        );
        assert_eq!(keys[0].public.get(CKA_VALUE).unwrap(), &[7u8; 64][..]);
        assert!(parse_key_directory(&[]).unwrap().is_empty());
    }
}
