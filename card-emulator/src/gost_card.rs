//! The Klyuch GOST token, exactly as docs/gost-card.md specifies it (that page is the
//! contract with the host driver; section names below refer to it). ISO/IEC 7816-4 file and
//! security commands, ISO/IEC 7816-8 MSE / PSO / GENERATE ASYMMETRIC KEY PAIR, GOST R
//! 34.10-2012 keys on the card.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streebog::Digest;

use crate::apdu::{Command, Response, sw, trace_command};
use crate::cert;
use crate::gost::{Curve, curve_for_oid};
use crate::piv::Hex;
use crate::store::{CardFile, Store, hexbytes};
use crate::tlv::{self, der, tlv};
use crate::vpcd::{self, Card};

/// Application identifier (gost-card.md "ATR and application"): D6 43 = national
/// registration category, country code 643, then "KLYGOST".
pub const AID: [u8; 11] = [
    0xD6, 0x43, 0x00, 0x00, 0x4B, 0x4C, 0x59, 0x47, 0x4F, 0x53, 0x54,
];

/// ATR (gost-card.md "ATR and application"): `3B 8C 80 01` + "KLYUCH-GOST1" + TCK.
pub fn default_atr() -> Vec<u8> {
    let mut atr = vec![0x3B, 0x8C, 0x80, 0x01];
    atr.extend_from_slice(b"KLYUCH-GOST1");
    // TCK: XOR of all bytes from T0 to the last historical byte (ISO/IEC 7816-3 §8.2.5).
    let tck = atr[1..].iter().fold(0u8, |a, b| a ^ b);
    atr.push(tck);
    atr
}

/// File identifiers (gost-card.md "Files").
pub const FID_KEY_DIRECTORY: u16 = 0x4B01;
pub const FID_CERT_FIRST: u16 = 0xCE01;
pub const FID_CERT_LAST: u16 = 0xCE08;
/// Largest certificate file (gost-card.md "UPDATE BINARY").
pub const MAX_FILE: usize = 4096;
/// PIN references and retry limits (gost-card.md "PINs").
pub const PIN_USER: u8 = 0x01;
pub const PIN_ADMIN: u8 = 0x02;
pub const DEFAULT_USER_PIN: &[u8] = b"12345678";
pub const DEFAULT_ADMIN_PIN: &[u8] = b"87654321";
pub const MAX_TRIES: u8 = 10;
/// Key algorithms of the key directory (gost-card.md "Key directory").
pub const ALG_256: u8 = 0x01;
pub const ALG_512: u8 = 0x02;
/// Paramset of the provisioned key: tc26-256-B (gost-card.md "Provisioned state").
pub const PROVISION_PARAMSET: &str = "1.2.643.7.1.2.1.1.2";

/// One key on the card.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct GostKey {
    pub alg: u8,
    /// Paramset OID as given at generation (dotted); reported unchanged.
    pub paramset: String,
    /// Private scalar d, big-endian.
    pub d: Hex,
    /// Public key X_le || Y_le.
    pub public: Hex,
}

/// Persistent state of the GOST card.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct GostState {
    #[serde(with = "hexbytes")]
    pub serial: Vec<u8>,
    #[serde(with = "hexbytes")]
    pub user_pin: Vec<u8>,
    pub user_left: u8,
    #[serde(with = "hexbytes")]
    pub admin_pin: Vec<u8>,
    pub admin_left: u8,
    /// Key reference ("1".."8") -> key.
    pub keys: BTreeMap<String, GostKey>,
    /// Key reference ("1".."8") -> contents of certificate EF CE0x (absent = no file).
    pub certs: BTreeMap<String, Hex>,
}

impl GostState {
    pub fn empty(serial: Vec<u8>) -> GostState {
        GostState {
            serial,
            user_pin: DEFAULT_USER_PIN.to_vec(),
            user_left: MAX_TRIES,
            admin_pin: DEFAULT_ADMIN_PIN.to_vec(),
            admin_left: MAX_TRIES,
            keys: BTreeMap::new(),
            certs: BTreeMap::new(),
        }
    }

    fn key(&self, r: u8) -> Option<&GostKey> {
        self.keys.get(&r.to_string())
    }

    /// EF 4B01: one `A0` record per key (gost-card.md "Key directory").
    pub fn key_directory(&self) -> Vec<u8> {
        let mut refs: Vec<u8> = self.keys.keys().filter_map(|k| k.parse().ok()).collect();
        refs.sort_unstable();
        refs.iter()
            .map(|r| {
                let k = &self.keys[&r.to_string()];
                tlv(
                    0xA0,
                    &[
                        tlv(0x84, &[*r]),
                        tlv(0x80, &[k.alg]),
                        tlv(0x06, &der::oid_contents(&k.paramset)),
                        tlv(0x86, &k.public.0),
                    ]
                    .concat(),
                )
            })
            .collect::<Vec<_>>()
            .concat()
    }

    fn file(&self, fid: u16) -> Option<Vec<u8>> {
        match fid {
            FID_KEY_DIRECTORY => Some(self.key_directory()),
            FID_CERT_FIRST..=FID_CERT_LAST => self
                .certs
                .get(&(fid - FID_CERT_FIRST + 1).to_string())
                .map(|h| h.0.clone()),
            _ => None,
        }
    }
}

/// OID contents bytes -> dotted form (X.690 §8.19).
fn oid_dotted(contents: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    for (i, b) in contents.iter().enumerate() {
        if v > u64::MAX >> 8 {
            return None;
        }
        v = (v << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        } else if i == contents.len() - 1 {
            return None;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// Self-signed certificate for a 256- or 512-bit key (gost-pkcs11.md §7, RFC 9215).
pub fn self_signed_cert(key: &GostKey, common_name: &str) -> Result<Vec<u8>, String> {
    let curve = Curve::new(curve_for_oid(&key.paramset).ok_or("unknown paramset")?);
    let is512 = key.alg == ALG_512;
    let (key_oid, sig_oid, hash_oid) = if is512 {
        (
            "1.2.643.7.1.1.1.2",
            "1.2.643.7.1.1.3.3",
            "1.2.643.7.1.1.2.3",
        )
    } else {
        (
            "1.2.643.7.1.1.1.1",
            "1.2.643.7.1.1.3.2",
            "1.2.643.7.1.1.2.2",
        )
    };
    // digestParamSet: MUST for the CryptoPro/Xch paramsets, omitted otherwise (RFC 9215
    // §3, quoted in gost-pkcs11.md §7).
    let with_digest = key.paramset.starts_with("1.2.643.2.2.");
    let params = if with_digest {
        der::seq(&[&der::oid(&key.paramset), &der::oid(hash_oid)])
    } else {
        der::seq(&[&der::oid(&key.paramset)])
    };
    let spki = der::seq(&[
        &der::seq(&[&der::oid(key_oid), &params]),
        &der::bit_string(&der::octet_string(&key.public.0)),
    ]);
    let sig_alg = der::seq(&[&der::oid(sig_oid)]);
    let serial = crate::crypto::random(12);
    cert::self_signed(
        &cert::CertSpec {
            common_name,
            organization: None,
            serial: &serial,
            spki: &spki,
            sig_alg: &sig_alg,
            key_usage: 0xC0,
        },
        |tbs| {
            let digest = if is512 {
                streebog::Streebog512::digest(tbs).to_vec()
            } else {
                streebog::Streebog256::digest(tbs).to_vec()
            };
            curve
                .sign(&key.d.0, &digest)
                .ok_or(crate::crypto::CryptoError)
        },
    )
    .map_err(|_| "certificate signature failed".to_string())
}

fn generate_key(alg: u8, paramset: &str) -> Option<GostKey> {
    let params = curve_for_oid(paramset)?;
    let want_bits = if alg == ALG_256 { 256 } else { 512 };
    if params.bits != want_bits {
        return None;
    }
    let (d, public) = Curve::new(params).generate();
    Some(GostKey {
        alg,
        paramset: paramset.to_string(),
        d: Hex(d),
        public: Hex(public),
    })
}

/// The provisioned card (gost-card.md "Provisioned state").
pub fn provision(serial: Vec<u8>) -> Result<GostState, String> {
    let mut st = GostState::empty(serial);
    let key = generate_key(ALG_256, PROVISION_PARAMSET).ok_or("key generation failed")?;
    let cert = self_signed_cert(&key, "Klyuch GOST Test Card")?;
    st.keys.insert("1".into(), key);
    st.certs.insert("1".into(), Hex(cert));
    Ok(st)
}

/// The card in the reader.
pub struct GostCard {
    pub st: GostState,
    store: Option<Store>,
    atr: Vec<u8>,
    log: bool,
    selected: bool,
    current_ef: Option<u16>,
    user_ok: bool,
    admin_ok: bool,
    /// Key chosen by MSE:SET for PSO: COMPUTE DIGITAL SIGNATURE.
    se_key: Option<u8>,
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A PIN block: 16 bytes, 4..16 bytes of printable ASCII then `FF` padding (gost-card.md
/// "PINs").
fn unpad(block: &[u8]) -> Option<&[u8]> {
    if block.len() != 16 {
        return None;
    }
    let n = block.iter().position(|b| *b == 0xFF).unwrap_or(16);
    let (pin, pad) = block.split_at(n);
    if n < 4 || pad.iter().any(|b| *b != 0xFF) || pin.iter().any(|b| !(0x20..=0x7E).contains(b)) {
        return None;
    }
    Some(pin)
}

impl GostCard {
    pub fn new(st: GostState, store: Option<Store>, atr: Vec<u8>, log: bool) -> GostCard {
        GostCard {
            st,
            store,
            atr,
            log,
            selected: false,
            current_ef: None,
            user_ok: false,
            admin_ok: false,
            se_key: None,
        }
    }

    fn save(&mut self) -> Result<(), u16> {
        if let Some(store) = &self.store {
            let file = CardFile {
                profile: "gost".into(),
                piv: None,
                gost: Some(self.st.clone()),
            };
            store.save(&file).map_err(|e| {
                eprintln!("klyuch-card-emulator: cannot save state: {e}");
                sw::NO_PRECISE_DIAGNOSIS
            })?;
        }
        Ok(())
    }

    fn clear_security(&mut self) {
        self.user_ok = false;
        self.admin_ok = false;
        self.se_key = None;
        self.current_ef = None;
    }

    fn process(&mut self, raw: &[u8]) -> Response {
        let c = match Command::parse(raw) {
            Ok(c) => c,
            Err(e) => return e.into(),
        };
        if c.cla != 0x00 {
            return sw::CLA_NOT_SUPPORTED.into();
        }
        if c.extended {
            // All commands of this card are short APDUs.
            return sw::WRONG_LENGTH.into();
        }
        let r = match c.ins {
            0xA4 => self.select(&c),
            _ if !self.selected => Err(sw::CONDITIONS),
            0xCA => self.get_data(&c),
            0xB0 => self.read_binary(&c),
            0x0E => self.erase_binary(&c),
            0xD6 => self.update_binary(&c),
            0x20 => self.verify(&c),
            0x24 => self.change_reference_data(&c),
            0x2C => self.reset_retry_counter(&c),
            0x22 => self.mse_set(&c),
            0x2A => self.pso_cds(&c),
            0x46 => self.generate(&c),
            _ => Err(sw::INS_NOT_SUPPORTED),
        };
        r.unwrap_or_else(Response::sw)
    }

    /// SELECT application (P1 04) or EF (P1 02) — gost-card.md "ATR and application",
    /// "Files".
    fn select(&mut self, c: &Command) -> Result<Response, u16> {
        match (c.p1, c.p2) {
            (0x04, 0x00 | 0x0C) => {
                if c.data != AID {
                    return Err(sw::NOT_FOUND);
                }
                self.selected = true;
                self.clear_security();
                if c.p2 == 0x0C {
                    Ok(Response::ok(Vec::new()))
                } else {
                    Ok(Response::ok(tlv(0x6F, &tlv(0x84, &AID))))
                }
            }
            (0x02, 0x04 | 0x0C) => {
                if !self.selected {
                    return Err(sw::NOT_FOUND);
                }
                let [hi, lo] = c.data[..] else {
                    return Err(sw::WRONG_LENGTH);
                };
                let fid = u16::from_be_bytes([hi, lo]);
                let is_cert = (FID_CERT_FIRST..=FID_CERT_LAST).contains(&fid);
                match self.st.file(fid) {
                    Some(content) => {
                        self.current_ef = Some(fid);
                        if c.p2 == 0x0C {
                            return Ok(Response::ok(Vec::new()));
                        }
                        let size = u16::try_from(content.len()).unwrap_or(u16::MAX);
                        // FCP: 80 size, 82 descriptor 01 (transparent EF), 83 FID.
                        Ok(Response::ok(tlv(
                            0x62,
                            &[
                                tlv(0x80, &size.to_be_bytes()),
                                tlv(0x82, &[0x01]),
                                tlv(0x83, &fid.to_be_bytes()),
                            ]
                            .concat(),
                        )))
                    }
                    // An empty certificate EF can be selected for writing with P2 0C.
                    None if is_cert && c.p2 == 0x0C => {
                        self.current_ef = Some(fid);
                        Ok(Response::ok(Vec::new()))
                    }
                    None => Err(sw::NOT_FOUND),
                }
            }
            _ => Err(sw::INCORRECT_P1P2),
        }
    }

    /// GET DATA serial: `00 CA 01 81 00` (gost-card.md "Identification").
    fn get_data(&mut self, c: &Command) -> Result<Response, u16> {
        if (c.p1, c.p2) != (0x01, 0x81) {
            return Err(sw::INCORRECT_P1P2);
        }
        Ok(Response::ok(self.st.serial.clone()))
    }

    fn current_file(&self) -> Result<(u16, Vec<u8>), u16> {
        let fid = self.current_ef.ok_or(sw::NOT_FOUND)?;
        Ok((fid, self.st.file(fid).unwrap_or_default()))
    }

    /// READ BINARY `00 B0 <offset:2> <Le>`.
    fn read_binary(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 & 0x80 != 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        let offset = usize::from(u16::from_be_bytes([c.p1, c.p2]));
        let (_, content) = self.current_file()?;
        if offset >= content.len() {
            return Err(sw::WRONG_P1P2);
        }
        let n = c.le.unwrap_or(256).min(content.len() - offset);
        Ok(Response::ok(content[offset..offset + n].to_vec()))
    }

    fn writable_cert(&self) -> Result<u16, u16> {
        let fid = self.current_ef.ok_or(sw::NOT_FOUND)?;
        if !(FID_CERT_FIRST..=FID_CERT_LAST).contains(&fid) {
            // The key directory is maintained by the card only.
            return Err(sw::SECURITY_STATUS);
        }
        if !self.user_ok {
            return Err(sw::SECURITY_STATUS);
        }
        Ok(fid)
    }

    /// ERASE BINARY `00 0E 00 00` on a certificate EF.
    fn erase_binary(&mut self, c: &Command) -> Result<Response, u16> {
        if (c.p1, c.p2) != (0, 0) {
            return Err(sw::INCORRECT_P1P2);
        }
        let fid = self.writable_cert()?;
        self.st
            .certs
            .remove(&(fid - FID_CERT_FIRST + 1).to_string());
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    /// UPDATE BINARY `00 D6 <offset:2> <Lc> <data>` on a certificate EF.
    fn update_binary(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 & 0x80 != 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        if c.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        let fid = self.writable_cert()?;
        let offset = usize::from(u16::from_be_bytes([c.p1, c.p2]));
        let end = offset + c.data.len();
        if end > MAX_FILE {
            return Err(sw::NOT_ENOUGH_MEMORY);
        }
        let key = (fid - FID_CERT_FIRST + 1).to_string();
        let mut content = self
            .st
            .certs
            .get(&key)
            .map(|h| h.0.clone())
            .unwrap_or_default();
        if content.len() < end {
            content.resize(end, 0);
        }
        content[offset..end].copy_from_slice(&c.data);
        self.st.certs.insert(key, Hex(content));
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    fn pin_state(&mut self, r: u8) -> Result<(Vec<u8>, u8), u16> {
        match r {
            PIN_USER => Ok((self.st.user_pin.clone(), self.st.user_left)),
            PIN_ADMIN => Ok((self.st.admin_pin.clone(), self.st.admin_left)),
            _ => Err(sw::REF_NOT_FOUND),
        }
    }

    fn set_left(&mut self, r: u8, left: u8) {
        if r == PIN_USER {
            self.st.user_left = left;
        } else {
            self.st.admin_left = left;
        }
    }

    fn set_verified(&mut self, r: u8, ok: bool) {
        if r == PIN_USER {
            self.user_ok = ok;
        } else {
            self.admin_ok = ok;
        }
    }

    fn verified(&self, r: u8) -> bool {
        if r == PIN_USER {
            self.user_ok
        } else {
            self.admin_ok
        }
    }

    /// Counts a try, compares, and resets the counter on success. `63Cx` on a wrong value
    /// (`63C0`: now blocked), `6983` when already blocked.
    fn check_pin(&mut self, r: u8, block: &[u8]) -> Result<(), u16> {
        let (value, left) = self.pin_state(r)?;
        if left == 0 {
            return Err(sw::AUTH_BLOCKED);
        }
        self.set_verified(r, false);
        self.set_left(r, left - 1);
        self.save()?;
        let mut expected = value;
        expected.resize(16, 0xFF);
        if !ct_eq(block, &expected) {
            return Err(sw::VERIFY_FAIL | u16::from((left - 1).min(15)));
        }
        self.set_left(r, MAX_TRIES);
        self.save()?;
        self.set_verified(r, true);
        Ok(())
    }

    /// VERIFY, status query, log out (gost-card.md "PINs").
    fn verify(&mut self, c: &Command) -> Result<Response, u16> {
        let (_, left) = self.pin_state(c.p2)?;
        match (c.p1, c.data.is_empty()) {
            (0xFF, true) => {
                self.set_verified(c.p2, false);
                Ok(Response::ok(Vec::new()))
            }
            (0x00, true) => {
                if left == 0 {
                    Err(sw::AUTH_BLOCKED)
                } else if self.verified(c.p2) {
                    Ok(Response::ok(Vec::new()))
                } else {
                    Err(sw::VERIFY_FAIL | u16::from(left.min(15)))
                }
            }
            (0x00, false) => {
                if left == 0 {
                    return Err(sw::AUTH_BLOCKED);
                }
                unpad(&c.data).ok_or(sw::INCORRECT_DATA)?;
                self.check_pin(c.p2, &c.data)?;
                Ok(Response::ok(Vec::new()))
            }
            _ => Err(sw::INCORRECT_P1P2),
        }
    }

    /// CHANGE REFERENCE DATA `00 24 00 <ref> 20 <old> <new>`.
    fn change_reference_data(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0x00 {
            return Err(sw::INCORRECT_P1P2);
        }
        let (_, left) = self.pin_state(c.p2)?;
        if left == 0 {
            return Err(sw::AUTH_BLOCKED);
        }
        if c.data.len() != 32 {
            return Err(sw::INCORRECT_DATA);
        }
        let (old, new) = c.data.split_at(16);
        unpad(old).ok_or(sw::INCORRECT_DATA)?;
        let new_pin = unpad(new).ok_or(sw::INCORRECT_DATA)?.to_vec();
        self.check_pin(c.p2, old)?;
        if c.p2 == PIN_USER {
            self.st.user_pin = new_pin;
        } else {
            self.st.admin_pin = new_pin;
        }
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    /// RESET RETRY COUNTER `00 2C 02 01 10 <new user PIN>` with the admin PIN verified.
    fn reset_retry_counter(&mut self, c: &Command) -> Result<Response, u16> {
        if (c.p1, c.p2) != (0x02, PIN_USER) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.admin_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let pin = unpad(&c.data).ok_or(sw::INCORRECT_DATA)?.to_vec();
        self.st.user_pin = pin;
        self.st.user_left = MAX_TRIES;
        self.save()?;
        Ok(Response::ok(Vec::new()))
    }

    /// MSE:SET digital signature template `00 22 41 B6 03 84 01 <key ref>`.
    fn mse_set(&mut self, c: &Command) -> Result<Response, u16> {
        if (c.p1, c.p2) != (0x41, 0xB6) {
            return Err(sw::INCORRECT_P1P2);
        }
        let r = match tlv::parse_all(&c.data).map_err(|_| sw::INCORRECT_DATA)?[..] {
            [t] if t.tag == 0x84 && t.value.len() == 1 => t.value[0],
            _ => return Err(sw::INCORRECT_DATA),
        };
        if self.st.key(r).is_none() {
            return Err(sw::REF_NOT_FOUND);
        }
        self.se_key = Some(r);
        Ok(Response::ok(Vec::new()))
    }

    /// PSO: COMPUTE DIGITAL SIGNATURE `00 2A 9E 9A <Lc> <digest> 00` -> s || r.
    fn pso_cds(&mut self, c: &Command) -> Result<Response, u16> {
        if (c.p1, c.p2) != (0x9E, 0x9A) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.user_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let r = self.se_key.ok_or(sw::CONDITIONS)?;
        let key = self.st.key(r).cloned().ok_or(sw::CONDITIONS)?;
        let curve = Curve::new(curve_for_oid(&key.paramset).ok_or(sw::NO_PRECISE_DIAGNOSIS)?);
        if c.data.len() != curve.byte_len() {
            return Err(sw::WRONG_LENGTH);
        }
        let sig = curve
            .sign(&key.d.0, &c.data)
            .ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        Ok(Response::ok(sig))
    }

    /// GENERATE ASYMMETRIC KEY PAIR `00 46 00 <ref> Lc AC L 80 01 <alg> 06 L <oid> 00`.
    fn generate(&mut self, c: &Command) -> Result<Response, u16> {
        if c.p1 != 0x00 || !(1..=8).contains(&c.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.user_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let (ac, rest) = tlv::parse_one(&c.data).map_err(|_| sw::INCORRECT_DATA)?;
        if ac.tag != 0xAC || !rest.is_empty() {
            return Err(sw::INCORRECT_DATA);
        }
        let alg = match tlv::find(ac.value, 0x80) {
            Some([a @ (ALG_256 | ALG_512)]) => *a,
            _ => return Err(sw::INCORRECT_DATA),
        };
        let oid = tlv::find(ac.value, 0x06)
            .and_then(oid_dotted)
            .ok_or(sw::INCORRECT_DATA)?;
        let allowed_256 = [
            "1.2.643.7.1.2.1.1.1",
            "1.2.643.7.1.2.1.1.2",
            "1.2.643.7.1.2.1.1.3",
            "1.2.643.7.1.2.1.1.4",
            "1.2.643.2.2.35.1",
            "1.2.643.2.2.35.2",
            "1.2.643.2.2.35.3",
            "1.2.643.2.2.36.0",
            "1.2.643.2.2.36.1",
        ];
        let allowed_512 = [
            "1.2.643.7.1.2.1.2.1",
            "1.2.643.7.1.2.1.2.2",
            "1.2.643.7.1.2.1.2.3",
        ];
        let ok = if alg == ALG_256 {
            allowed_256.contains(&oid.as_str())
        } else {
            allowed_512.contains(&oid.as_str())
        };
        if !ok {
            return Err(sw::INCORRECT_DATA);
        }
        let key = generate_key(alg, &oid).ok_or(sw::INCORRECT_DATA)?;
        let public = key.public.0.clone();
        self.st.keys.insert(c.p2.to_string(), key);
        self.st.certs.remove(&c.p2.to_string());
        self.save()?;
        Ok(Response::ok(tlv(0x7F49, &tlv(0x86, &public))))
    }
}

impl Card for GostCard {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    /// Power-on or reset: no application selected, no PIN verified (gost-card.md "PINs").
    fn reset(&mut self) {
        self.selected = false;
        self.clear_security();
    }

    fn transmit(&mut self, raw: &[u8]) -> Vec<u8> {
        let secret = raw.len() > 1 && matches!(raw[1], 0x20 | 0x24 | 0x2C);
        if self.log {
            eprintln!("gost >> {}", trace_command(raw, secret));
        }
        let r = self.process(raw);
        if self.log {
            eprintln!("gost << {} {:04X}", hex::encode_upper(&r.data), r.sw);
        }
        r.to_bytes()
    }
}

/// Command-line options that concern the GOST card.
#[derive(Debug, Clone)]
pub struct CliOptions {
    pub provision: bool,
    pub serial: Option<String>,
    pub atr: Vec<u8>,
    pub log: bool,
    pub init_only: bool,
    pub host: String,
    pub port: u16,
}

/// Opens or creates the card and serves it in the reader.
pub fn run_cli(store: Store, st: Option<GostState>, o: CliOptions) -> Result<(), String> {
    let st = match st {
        Some(st) => st,
        None => {
            let serial = match &o.serial {
                Some(h) => {
                    let v =
                        hex::decode(format!("{h:0>16}")).map_err(|e| format!("--serial: {e}"))?;
                    if v.len() != 8 {
                        return Err("--serial: at most 16 hex digits".into());
                    }
                    v
                }
                None => crate::crypto::random(8),
            };
            let st = if o.provision {
                provision(serial)?
            } else {
                GostState::empty(serial)
            };
            store.save(&CardFile {
                profile: "gost".into(),
                piv: None,
                gost: Some(st.clone()),
            })?;
            st
        }
    };
    if o.init_only {
        return Ok(());
    }
    let atr = if o.atr.is_empty() {
        default_atr()
    } else {
        o.atr
    };
    let mut card = GostCard::new(st, Some(store), atr, o.log);
    vpcd::run(&o.host, o.port, &mut card, o.log, false).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> GostCard {
        GostCard::new(
            provision(vec![1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
            None,
            default_atr(),
            false,
        )
    }

    fn tx(c: &mut GostCard, apdu: &[u8]) -> (Vec<u8>, u16) {
        let r = c.transmit(apdu);
        let n = r.len();
        (
            r[..n - 2].to_vec(),
            u16::from_be_bytes([r[n - 2], r[n - 1]]),
        )
    }

    fn cmd(ins: u8, p1: u8, p2: u8, data: &[u8], le: bool) -> Vec<u8> {
        let mut v = vec![0x00, ins, p1, p2];
        if !data.is_empty() {
            v.push(data.len() as u8);
            v.extend_from_slice(data);
        }
        if le {
            v.push(0);
        }
        v
    }

    fn block(pin: &[u8]) -> Vec<u8> {
        let mut v = pin.to_vec();
        v.resize(16, 0xFF);
        v
    }

    fn select_app(c: &mut GostCard) {
        assert_eq!(tx(c, &cmd(0xA4, 4, 0x0C, &AID, false)).1, 0x9000);
    }

    #[test]
    fn atr_and_select() {
        let atr = default_atr();
        assert_eq!(atr.len(), 17);
        assert_eq!(&atr[4..16], b"KLYUCH-GOST1");
        assert_eq!(atr[1..].iter().fold(0, |a, b| a ^ b), 0);
        let mut c = card();
        assert_eq!(tx(&mut c, &[0, 0xCA, 1, 0x81, 0]).1, 0x6985);
        assert_eq!(
            tx(&mut c, &cmd(0xA4, 4, 0x0C, &[0xA0, 0, 0, 3, 8], false)).1,
            0x6A82
        );
        let (fci, sw) = tx(&mut c, &cmd(0xA4, 4, 0x00, &AID, true));
        assert_eq!(sw, 0x9000);
        assert_eq!(&fci[..4], &[0x6F, 0x0D, 0x84, 0x0B]);
        assert_eq!(
            tx(&mut c, &[0, 0xCA, 1, 0x81, 0]),
            (vec![1, 2, 3, 4, 5, 6, 7, 8], 0x9000)
        );
        assert_eq!(tx(&mut c, &[0x80, 0xCA, 1, 0x81, 0]).1, 0x6E00);
        assert_eq!(tx(&mut c, &[0x00, 0x99, 0, 0]).1, 0x6D00);
    }

    #[test]
    fn key_directory_and_certificate_files() {
        let mut c = card();
        select_app(&mut c);
        let (fcp, sw) = tx(&mut c, &cmd(0xA4, 2, 4, &[0x4B, 0x01], true));
        assert_eq!(sw, 0x9000);
        assert_eq!(&fcp[..4], &[0x62, 0x0B, 0x80, 0x02]);
        let size = usize::from(u16::from_be_bytes([fcp[4], fcp[5]]));
        let (dir, sw) = tx(&mut c, &[0, 0xB0, 0, 0, 0]);
        assert_eq!(sw, 0x9000);
        assert_eq!(dir.len(), size);
        let rec = tlv::find(&dir, 0xA0).unwrap();
        assert_eq!(tlv::find(rec, 0x84), Some(&[1u8][..]));
        assert_eq!(tlv::find(rec, 0x80), Some(&[1u8][..]));
        assert_eq!(
            tlv::find(rec, 0x06),
            Some(&[0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x01, 0x02][..])
        );
        assert_eq!(tlv::find(rec, 0x86).unwrap().len(), 64);
        assert_eq!(tx(&mut c, &[0, 0xB0, 0x01, 0x00, 0]).1, 0x6B00);
        // Certificate: read it whole in 256-byte steps.
        let (fcp, _) = tx(&mut c, &cmd(0xA4, 2, 4, &[0xCE, 0x01], true));
        let size = usize::from(u16::from_be_bytes([fcp[4], fcp[5]]));
        let mut cert = Vec::new();
        while cert.len() < size {
            let off = cert.len() as u16;
            let (d, sw) = tx(&mut c, &[0, 0xB0, (off >> 8) as u8, off as u8, 0]);
            assert_eq!(sw, 0x9000);
            cert.extend(d);
        }
        assert_eq!(cert[0], 0x30);
        // Absent certificate EF: 6A82 with FCP, selectable with P2 0C; writing needs the PIN.
        assert_eq!(tx(&mut c, &cmd(0xA4, 2, 4, &[0xCE, 0x02], true)).1, 0x6A82);
        assert_eq!(
            tx(&mut c, &cmd(0xA4, 2, 0x0C, &[0xCE, 0x02], false)).1,
            0x9000
        );
        assert_eq!(tx(&mut c, &cmd(0xD6, 0, 0, &[1, 2, 3], false)).1, 0x6982);
        assert_eq!(
            tx(&mut c, &cmd(0x20, 0, 1, &block(b"12345678"), false)).1,
            0x9000
        );
        assert_eq!(tx(&mut c, &[0, 0x0E, 0, 0]).1, 0x9000);
        assert_eq!(tx(&mut c, &cmd(0xD6, 0, 0, &[1, 2, 3], false)).1, 0x9000);
        assert_eq!(tx(&mut c, &cmd(0xD6, 0, 3, &[4, 5], false)).1, 0x9000);
        assert_eq!(tx(&mut c, &cmd(0xD6, 0x10, 0x00, &[4, 5], false)).1, 0x6A84);
        assert_eq!(
            tx(&mut c, &[0, 0xB0, 0, 0, 0]),
            (vec![1, 2, 3, 4, 5], 0x9000)
        );
        assert_eq!(tx(&mut c, &cmd(0xA4, 2, 4, &[0xCE, 0x02], true)).1, 0x9000);
        // The key directory is never writable.
        assert_eq!(
            tx(&mut c, &cmd(0xA4, 2, 0x0C, &[0x4B, 0x01], false)).1,
            0x9000
        );
        assert_eq!(tx(&mut c, &cmd(0xD6, 0, 0, &[1], false)).1, 0x6982);
    }

    #[test]
    fn pins() {
        let mut c = card();
        select_app(&mut c);
        let status = [0, 0x20, 0, 1];
        assert_eq!(tx(&mut c, &status).1, 0x63CA);
        assert_eq!(
            tx(&mut c, &cmd(0x20, 0, 1, &block(b"00000000"), false)).1,
            0x63C9
        );
        assert_eq!(tx(&mut c, &cmd(0x20, 0, 1, b"12345678", false)).1, 0x6A80);
        assert_eq!(
            tx(&mut c, &cmd(0x20, 0, 1, &block(b"12345678"), false)).1,
            0x9000
        );
        assert_eq!(tx(&mut c, &status).1, 0x9000);
        assert_eq!(tx(&mut c, &[0, 0x20, 0xFF, 1]).1, 0x9000);
        assert_eq!(tx(&mut c, &status).1, 0x63CA);
        for left in (0..10).rev() {
            let sw = tx(&mut c, &cmd(0x20, 0, 1, &block(b"0000"), false)).1;
            assert_eq!(sw, 0x63C0 | left);
        }
        assert_eq!(
            tx(&mut c, &cmd(0x20, 0, 1, &block(b"12345678"), false)).1,
            0x6983
        );
        assert_eq!(tx(&mut c, &status).1, 0x6983);
        // Admin PIN unblocks and sets a new user PIN.
        let rrc = cmd(0x2C, 2, 1, &block(b"1111"), false);
        assert_eq!(tx(&mut c, &rrc).1, 0x6982);
        assert_eq!(
            tx(&mut c, &cmd(0x20, 0, 2, &block(b"87654321"), false)).1,
            0x9000
        );
        assert_eq!(tx(&mut c, &rrc).1, 0x9000);
        assert_eq!(
            tx(&mut c, &cmd(0x20, 0, 1, &block(b"1111"), false)).1,
            0x9000
        );
        // CHANGE REFERENCE DATA; the new PIN is verified afterwards.
        select_app(&mut c);
        let crd = cmd(
            0x24,
            0,
            1,
            &[block(b"1111"), block(b"12345678")].concat(),
            false,
        );
        assert_eq!(tx(&mut c, &crd).1, 0x9000);
        assert_eq!(tx(&mut c, &status).1, 0x9000);
        // SELECT logs out.
        select_app(&mut c);
        assert_eq!(tx(&mut c, &status).1, 0x63CA);
    }

    #[test]
    fn sign_and_generate() {
        let mut c = card();
        select_app(&mut c);
        let digest = [0x5Au8; 32];
        let pso = cmd(0x2A, 0x9E, 0x9A, &digest, true);
        assert_eq!(tx(&mut c, &pso).1, 0x6982);
        assert_eq!(
            tx(&mut c, &cmd(0x20, 0, 1, &block(b"12345678"), false)).1,
            0x9000
        );
        assert_eq!(tx(&mut c, &pso).1, 0x6985);
        assert_eq!(
            tx(&mut c, &cmd(0x22, 0x41, 0xB6, &[0x84, 1, 5], false)).1,
            0x6A88
        );
        assert_eq!(
            tx(&mut c, &cmd(0x22, 0x41, 0xB6, &[0x84, 1, 1], false)).1,
            0x9000
        );
        assert_eq!(tx(&mut c, &cmd(0x2A, 0x9E, 0x9A, &[1; 31], true)).1, 0x6700);
        let (sig, sw) = tx(&mut c, &pso);
        assert_eq!(sw, 0x9000);
        let k = c.st.key(1).unwrap().clone();
        let curve = Curve::new(curve_for_oid(&k.paramset).unwrap());
        assert!(curve.verify(&k.public.0, &digest, &sig));
        // Generate a 512-bit key at reference 2 (tc26-512-A).
        let oid = der::oid_contents("1.2.643.7.1.2.1.2.1");
        let ac = tlv(0xAC, &[tlv(0x80, &[2]), tlv(0x06, &oid)].concat());
        let (r, sw) = tx(&mut c, &cmd(0x46, 0, 2, &ac, true));
        assert_eq!(sw, 0x9000);
        let public = tlv::find(tlv::find(&r, 0x7F49).unwrap(), 0x86)
            .unwrap()
            .to_vec();
        assert_eq!(public.len(), 128);
        assert_eq!(
            tx(&mut c, &cmd(0x22, 0x41, 0xB6, &[0x84, 1, 2], false)).1,
            0x9000
        );
        let d64 = [0x33u8; 64];
        let (sig, sw) = tx(&mut c, &cmd(0x2A, 0x9E, 0x9A, &d64, true));
        assert_eq!(sw, 0x9000);
        let k = c.st.key(2).unwrap().clone();
        assert!(Curve::new(curve_for_oid(&k.paramset).unwrap()).verify(&public, &d64, &sig));
        // Wrong combinations.
        let bad = tlv(0xAC, &[tlv(0x80, &[1]), tlv(0x06, &oid)].concat());
        assert_eq!(tx(&mut c, &cmd(0x46, 0, 3, &bad, true)).1, 0x6A80);
        // Regenerating key 1 erases its certificate.
        let oid = der::oid_contents("1.2.643.2.2.35.1");
        let ac = tlv(0xAC, &[tlv(0x80, &[1]), tlv(0x06, &oid)].concat());
        assert_eq!(tx(&mut c, &cmd(0x46, 0, 1, &ac, true)).1, 0x9000);
        assert_eq!(tx(&mut c, &cmd(0xA4, 2, 4, &[0xCE, 0x01], true)).1, 0x6A82);
        assert_eq!(c.st.key(1).unwrap().paramset, "1.2.643.2.2.35.1");
    }

    #[test]
    fn oid_roundtrip() {
        for o in ["1.2.643.7.1.2.1.1.2", "1.2.643.2.2.35.1", "2.5.4.3"] {
            assert_eq!(oid_dotted(&der::oid_contents(o)).unwrap(), o);
        }
    }
}
