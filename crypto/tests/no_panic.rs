//! "Never panic on any input": every mechanism with every kind of key, random parameters and
//! random data of many lengths, and the parsers with random and truncated bytes. Only
//! termination without a panic is checked (results are `Ok` or a spec error).

mod common;

use std::sync::Arc;

use common::*;
use klyuch_crypto::{Key, mechanisms, pkcs8, x509};
use token_api::ck::*;
use token_api::{MechParam, Template};

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Random bytes of a random interesting length.
    fn any(&mut self) -> Vec<u8> {
        let n = self.len();
        self.bytes(n)
    }
    /// Random bytes, fewer than `m`.
    fn short(&mut self, m: usize) -> Vec<u8> {
        let n = self.below(m);
        self.bytes(n)
    }
    fn len(&mut self) -> usize {
        [
            0, 1, 2, 7, 8, 12, 15, 16, 17, 20, 28, 31, 32, 33, 48, 64, 65, 66, 100, 128, 129, 256,
            300,
        ][self.below(23)]
    }
}

fn params(r: &mut Rng) -> MechParam {
    let hashes = [CKM_SHA_1, CKM_SHA256, CKM_SHA512, CKM_MD5, 0];
    let mgfs = [CKG_MGF1_SHA1, CKG_MGF1_SHA256, CKG_MGF1_SHA512, 0];
    match r.below(11) {
        0 => MechParam::None,
        1 => MechParam::Bytes(r.any()),
        2 => MechParam::Ulong(r.below(100) as CK_ULONG),
        3 => MechParam::RsaPss {
            hash: hashes[r.below(5)],
            mgf: mgfs[r.below(4)],
            salt_len: [0, 20, 32, 1000, CK_ULONG::MAX][r.below(5)],
        },
        4 => MechParam::RsaOaep {
            hash: hashes[r.below(5)],
            mgf: mgfs[r.below(4)],
            source: r.any(),
        },
        5 => MechParam::Gcm {
            iv: {
                let n = [12, 0, 16][r.below(3)];
                r.bytes(n)
            },
            aad: r.any(),
            tag_bits: [128, 0, 96, 1000][r.below(4)],
        },
        6 => {
            let mut block = [0u8; 16];
            block.copy_from_slice(&r.bytes(16));
            MechParam::Ctr {
                counter_bits: [0, 1, 8, 64, 128, 129][r.below(6)],
                block,
            }
        }
        7 => MechParam::Ecdh1 {
            kdf: [CKD_NULL, CKD_SHA256_KDF, 99][r.below(3)],
            shared_data: r.short(8),
            public_data: r.any(),
        },
        8 => MechParam::Eddsa {
            prehash: r.below(2) == 0,
            context: r.short(4),
        },
        9 => MechParam::Bytes(vec![0xa6; 8]),
        _ => MechParam::Bytes(r.bytes(16)),
    }
}

fn keys() -> Vec<Arc<Key>> {
    let mut v = Vec::new();
    let (a, b, _, _) = rsa(1024);
    v.extend([a, b]);
    for c in [P256, P521] {
        let (a, b, _, _) = ec(c);
        v.extend([a, b]);
    }
    let (a, b, _, _) = ed25519();
    v.extend([a, b]);
    v.push(secret(CKK_AES, &[3; 16]));
    v.push(secret(CKK_AES, &[3; 24]));
    v.push(secret(CKK_GENERIC_SECRET, &[4; 5]));
    v
}

#[test]
fn every_mechanism_with_random_input() {
    let keys = keys();
    let mut r = Rng(0x1234_5678_9abc_def1);
    for m in mechanisms() {
        for _ in 0..60 {
            let key = keys[r.below(keys.len())].clone();
            let p = params(&mut r);
            let data = r.any();
            let sig = r.any();
            if let Ok(mut op) = m.sign_init(key.clone(), &p) {
                let _ = op.signature_len();
                let _ = op.sign(&data);
                let _ = op.sign(&data); // after the end
            }
            if let Ok(mut op) = m.verify_init(key.clone(), &p) {
                if r.below(2) == 0 {
                    let _ = op.verify(&data, &sig);
                } else {
                    let _ = op.update(&data);
                    let _ = op.update(&sig);
                    let _ = op.finish(&sig);
                }
            }
            for dec in [false, true] {
                let op = if dec {
                    m.decrypt_init(key.clone(), &p)
                } else {
                    m.encrypt_init(key.clone(), &p)
                };
                if let Ok(mut op) = op {
                    let _ = op.output_len(data.len());
                    let _ = op.final_len();
                    if op.multipart() && r.below(2) == 0 {
                        let _ = op.update(&data);
                        let _ = op.update(&sig);
                        let _ = op.finish();
                    } else {
                        let _ = op.one_shot(&data);
                    }
                }
            }
            let _ = m.wrap(key.clone(), &p, &data);
            let _ = m.unwrap(key.clone(), &p, &data);
            let mut t = Template::new();
            if r.below(2) == 0 {
                let n = r.len();
                t.set_ulong(CKA_VALUE_LEN, n as CK_ULONG);
            }
            if r.below(2) == 0 {
                t.set_ulong(
                    CKA_KEY_TYPE,
                    [CKK_AES, CKK_GENERIC_SECRET, CKK_RSA][r.below(3)],
                );
            }
            let _ = m.derive(key.clone(), &p, &t);
            if let Ok(mut d) = m.digest_init(&p) {
                let _ = d.update(&data);
                let _ = d.finish();
                let _ = d.finish();
            }
        }
    }
}

#[test]
fn keys_from_random_attributes() {
    let mut r = Rng(42);
    let types = [
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_PRIVATE_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
        CKA_COEFFICIENT,
        CKA_EC_PARAMS,
        CKA_EC_POINT,
        CKA_VALUE,
    ];
    for _ in 0..3000 {
        let mut t = Template::new();
        t.set_ulong(
            CKA_CLASS,
            [CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_SECRET_KEY][r.below(3)],
        );
        t.set_ulong(
            CKA_KEY_TYPE,
            [CKK_RSA, CKK_EC, CKK_EC_EDWARDS, CKK_AES, CKK_GENERIC_SECRET][r.below(5)],
        );
        for ty in types {
            if r.below(3) != 0 {
                let v = match (ty, r.below(3)) {
                    (CKA_EC_PARAMS, 0) => [P256, P384, P521, ED25519][r.below(4)].to_vec(),
                    _ => r.any(),
                };
                t.set(ty, v);
            }
        }
        let _ = Key::from_attributes(&t);
        let _ = pkcs8::public_from_private(&t);
    }
}

#[test]
fn parsers_with_random_and_truncated_bytes() {
    let mut r = Rng(7);
    // real inputs, truncated and bit-flipped
    let (_, k, _, _) = rsa(1024);
    let (_, e, _, _) = ec(P384);
    let (_, ed, _, _) = ed25519();
    let mut samples: Vec<Vec<u8>> = [&k, &e, &ed]
        .iter()
        .map(|k| pkcs8::to_pkcs8(k).unwrap().to_vec())
        .collect();
    samples.push(r.bytes(300));
    for s in &samples {
        for cut in 0..s.len().min(200) {
            let _ = pkcs8::private_key_attributes(&s[..cut]);
            let _ = x509::public_key_attributes(&s[..cut]);
            let _ = x509::certificate_attributes(&s[..cut]);
        }
        for _ in 0..300 {
            let mut f = s.clone();
            let i = r.below(f.len());
            f[i] ^= 1 << r.below(8);
            let _ = pkcs8::private_key_attributes(&f);
            let _ = pkcs8::rsa_private_key_attributes(&f);
            let _ = pkcs8::ec_private_key_attributes(&f);
            let _ = x509::public_key_attributes(&f);
            let _ = x509::certificate_attributes(&f);
        }
    }
    // lengths that would overflow or allocate without bounds
    let m = usize::MAX;
    let d = [0u8; 32];
    let _ = klyuch_crypto::padding::pss_encode(CKM_SHA256, CKG_MGF1_SHA1, m, &d, 2048);
    let _ = klyuch_crypto::padding::pss_encode(CKM_SHA256, CKG_MGF1_SHA1, 32, &d, m);
    let _ = klyuch_crypto::padding::pss_verify(CKM_SHA256, CKG_MGF1_SHA1, m, &d, &[0; 256], 2048);
    let _ = klyuch_crypto::padding::pss_verify(CKM_SHA256, CKG_MGF1_SHA1, 32, &d, &[0; 256], m);
    let _ = klyuch_crypto::padding::pkcs1_v15_sign_pad(&d, m);
    let _ = klyuch_crypto::padding::pkcs1_v15_encrypt_pad(&d, m);
    let _ = klyuch_crypto::padding::oaep_encode(CKM_SHA256, CKG_MGF1_SHA1, b"", &d, m);
    for _ in 0..2000 {
        let b = r.any();
        let _ = klyuch_crypto::curve_from_params(&b);
        let _ = klyuch_crypto::padding::oaep_decode(CKM_SHA256, CKG_MGF1_SHA256, b"", &b);
        let _ = klyuch_crypto::padding::pkcs1_v15_decrypt_unpad(&b);
        let n = r.len();
        let _ = klyuch_crypto::padding::pss_verify(CKM_SHA256, CKG_MGF1_SHA256, 32, &b, &b, n);
        let (s1, n1) = (r.len(), r.len());
        let _ = klyuch_crypto::padding::pss_encode(CKM_SHA256, CKG_MGF1_SHA1, s1, &b, n1);
        let n = r.len();
        let _ = klyuch_crypto::padding::pkcs1_v15_sign_pad(&b, n);
        let _ = pkcs8::private_key_attributes_pem(&String::from_utf8_lossy(&b));
    }
}
