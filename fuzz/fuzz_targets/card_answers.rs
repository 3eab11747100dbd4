//! Random card answers: a card in a reader whose every response (data || SW1 SW2, possibly
//! malformed) comes from the input, through the replay transport of pcsc-backend
//! (`ReplayConnection::answering`); the card is removed when the answers run out. Drives the
//! profile choice (PIV, GOST token, the unsupported fallback), reading the card's contents,
//! certificates and keys, PIN status, login, signing and decryption with every mechanism the
//! token offers, ECDH derivation and PIN changes: every response parser of every profile.
//!
//! Input: `atr choice | ops | (len u16 LE | response)*`.
//! * atr choice: 0 the GOST token's ATR, 1 a PIV card's (both from pcsc-backend/tests/data),
//!   2 an ATR that comes next in the input as `len u8 | bytes`.
//! * ops: bit flags choosing which operations follow the opening (see `OPS`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcsc_backend::{CardToken, ReplayConnection, TokenOptions};
use token_api::ck::*;
use token_api::{MechParam, Mechanism, Pin, SessionCtx, Template, Token, UserType};

/// The Klyuch GOST token's ATR (pcsc-backend/tests/data/gost/open-login-sign.apdu).
const GOST_ATR: &[u8] = &[
    0x3B, 0x8C, 0x80, 0x01, 0x4B, 0x4C, 0x59, 0x55, 0x43, 0x48, 0x2D, 0x47, 0x4F, 0x53, 0x54, 0x31,
    0x1E,
];
/// The emulated PIV card's ATR (pcsc-backend/tests/data/piv/open-login-sign.apdu).
const PIV_ATR: &[u8] = &[
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

const S: SessionCtx = SessionCtx {
    handle: 1,
    rw: true,
};

/// Operations after opening the card, by bit of the ops byte.
const OP_LOGIN: u8 = 1;
const OP_SIGN: u8 = 2;
const OP_DECRYPT: u8 = 4;
const OP_DERIVE: u8 = 8;
const OP_SET_PIN: u8 = 16;
const OP_WRONG_PIN: u8 = 32;
const OP_GENERATE: u8 = 64;

fn find(t: &CardToken, class: Option<CK_OBJECT_CLASS>) -> Vec<u64> {
    let mut tmpl = Template::new();
    if let Some(c) = class {
        tmpl.set_ulong(CKA_CLASS, c);
    }
    t.find_objects(&S, &tmpl).unwrap_or_default()
}

fn read_all(t: &CardToken) {
    for id in find(t, None) {
        let _ = t.get_attributes(
            &S,
            id,
            &[
                CKA_CLASS,
                CKA_KEY_TYPE,
                CKA_ID,
                CKA_LABEL,
                CKA_VALUE,
                CKA_MODULUS,
                CKA_PUBLIC_EXPONENT,
                CKA_EC_PARAMS,
                CKA_EC_POINT,
                CKA_GOSTR3410_PARAMS,
                CKA_SUBJECT,
                CKA_ISSUER,
                CKA_SERIAL_NUMBER,
                CKA_ALWAYS_AUTHENTICATE,
            ],
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let mut it = input.iter().copied();
    let atr = match it.next().unwrap_or(0) % 3 {
        0 => GOST_ATR.to_vec(),
        1 => PIV_ATR.to_vec(),
        _ => {
            let n = usize::from(it.next().unwrap_or(0) % 34);
            it.by_ref().take(n).collect()
        }
    };
    let ops = it.next().unwrap_or(0);
    let rest: Vec<u8> = it.collect();
    let mut responses = Vec::new();
    let mut r = &rest[..];
    while r.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([r[0], r[1]]));
        r = &r[2..];
        let (a, b) = r.split_at(n.min(r.len()));
        responses.push(a.to_vec());
        r = b;
    }
    let conn = ReplayConnection::answering(atr, responses);
    let Ok(t) = CardToken::open(Box::new(conn), "fuzz", TokenOptions::default()) else {
        return;
    };
    let _ = t.info();
    let _ = t.profile_name();
    read_all(&t);
    for m in t.mechanism_list() {
        let _ = t.mechanism_info(m);
    }
    if ops & OP_WRONG_PIN != 0 {
        let _ = t.login(UserType::User, Some(&Pin::new(b"00000000")));
        let _ = t.info();
    }
    if ops & OP_LOGIN != 0 {
        let _ = t.login(UserType::User, Some(&Pin::new(b"12345678")));
        read_all(&t);
    }
    let keys = find(&t, Some(CKO_PRIVATE_KEY));
    let mechanisms = t.mechanism_list();
    if ops & OP_SIGN != 0 {
        for &k in &keys {
            for &m in &mechanisms {
                if let Ok(mut op) = t.sign_init(&S, &Mechanism::new(m), k) {
                    if op.needs_context_login() {
                        let _ = op.context_login(Some(&Pin::new(b"12345678")));
                    }
                    let _ = op.signature_len();
                    if op.multipart() {
                        let _ = op.update(b"klyuch card fuzz");
                        let _ = op.finish();
                    } else {
                        // A digest-sized input fits every raw signature mechanism.
                        let _ = op.sign(&[0x5A; 32]);
                    }
                }
            }
        }
    }
    if ops & OP_DECRYPT != 0 {
        for &k in &keys {
            for m in [CKM_RSA_PKCS, CKM_RSA_X_509] {
                if let Ok(mut op) = t.decrypt_init(&S, &Mechanism::new(m), k) {
                    let _ = op.one_shot(&[0x42; 256]);
                }
            }
        }
    }
    if ops & OP_DERIVE != 0 {
        for &k in &keys {
            // An uncompressed point of the right length for P-256 (not on the curve).
            let m = Mechanism::with(
                CKM_ECDH1_DERIVE,
                MechParam::Ecdh1 {
                    kdf: CKD_NULL,
                    shared_data: Vec::new(),
                    public_data: [&[0x04][..], &[0x11; 64]].concat(),
                },
            );
            let mut tmpl = Template::new();
            tmpl.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
            tmpl.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
            let _ = t.derive_key(&S, &m, k, &tmpl);
        }
    }
    if ops & OP_GENERATE != 0 {
        let mut public = Template::new();
        // secp256r1, 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1), DER.
        public.set(
            CKA_EC_PARAMS,
            vec![0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
        );
        public.set(CKA_ID, vec![0x02]);
        let _ = t.generate_key_pair(
            &S,
            &Mechanism::new(CKM_EC_KEY_PAIR_GEN),
            &public,
            &Template::new(),
        );
    }
    if ops & OP_SET_PIN != 0 {
        let _ = t.set_pin(Some(&Pin::new(b"12345678")), Some(&Pin::new(b"87654321")));
    }
    let _ = t.logout();
    let _ = t.info();
});
