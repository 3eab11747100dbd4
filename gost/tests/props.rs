//! Property tests of the public API over every parameter set: round trips, tampering, range and
//! length checks, key validation, OIDs, and no panics on arbitrary input.
//!
//! Randomness comes from the system RNG (fresh keys, digests and nonces on every run); each
//! property is checked on several samples per parameter set.

use klyuch_gost::{Error, ParamSet, SigningKey, VerifyingKey, vko_256, vko_512};

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap();
    v
}

/// q big-endian, per curve (gost-pkcs11.md §3 and §4.3).
fn order_be(ps: ParamSet) -> Vec<u8> {
    use ParamSet::*;
    let hex = match ps {
        Tc26Gost256A => "400000000000000000000000000000000FD8CDDFC87B6635C115AF556C360C67",
        Tc26Gost256B | CryptoProA | CryptoProXchA => {
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF6C611070995AD10045841B09B761B893"
        }
        Tc26Gost256C | CryptoProB => {
            "800000000000000000000000000000015F700CFFF1A624E5E497161BCC8A198F"
        }
        Tc26Gost256D | CryptoProC | CryptoProXchB => {
            "9B9F605F5A858107AB1EC85E6B41C8AA582CA3511EDDFB74F02F3A6598980BB9"
        }
        Tc26Gost512A => {
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF27E69532F48D89116FF22B8D4E0560609B4B38ABFAD2B85DCACDB1411F10B275"
        }
        Tc26Gost512B => {
            "800000000000000000000000000000000000000000000000000000000000000149A1EC142565A545ACFDB77BD9D40CFA8B996712101BEA0EC6346C54374F25BD"
        }
        Tc26Gost512C => {
            "3FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC98CDBA46506AB004C33A9FF5147502CC8EDA9E7A769A12694623CEF47F023ED"
        }
        Test256 => "8000000000000000000000000000000150FE8A1892976154C59CFC193ACCF5B3",
        Test512 => {
            "4531ACD1FE0023C7550D267B6B2FEE80922B14B2FFB90F04D4EB7C09B5D2D15DA82F2D7ECB1DBAC719905C5EECC423F1D86E25EDBE23C595D644AAF187E6E6DF"
        }
    };
    hex::decode(hex).unwrap()
}

/// `a + b` for big-endian byte strings of equal length (carry out dropped).
fn add_be(a: &[u8], b: u8) -> Vec<u8> {
    let mut out = a.to_vec();
    let mut carry = b as u16;
    for byte in out.iter_mut().rev() {
        let x = *byte as u16 + carry;
        *byte = x as u8;
        carry = x >> 8;
    }
    out
}

#[test]
fn oids_round_trip_and_aliases() {
    for &ps in ParamSet::all() {
        let der = ps.oid_der();
        assert_eq!(der[0], 0x06);
        assert_eq!(der[1] as usize, der.len() - 2);
        assert_eq!(ParamSet::from_oid(&der), Ok(ps));
        assert_eq!(ParamSet::from_oid(&der[2..]), Ok(ps));
        assert_eq!(ps.signature_len(), 2 * ps.key_len());
        assert_eq!(ps.key_len() * 8, ps.bits());
    }
    // gost-pkcs11.md §2.3 DER values.
    assert_eq!(
        ParamSet::from_oid(&hex::decode("06092A8503070102010101").unwrap()),
        Ok(ParamSet::Tc26Gost256A)
    );
    assert_eq!(
        ParamSet::from_oid(&hex::decode("06072A850302022301").unwrap()),
        Ok(ParamSet::CryptoProA)
    );
    assert_eq!(
        ParamSet::from_oid(&hex::decode("06072A850302022401").unwrap()),
        Ok(ParamSet::CryptoProXchB)
    );
    assert_eq!(
        ParamSet::from_oid(&hex::decode("06092A8503070102010203").unwrap()),
        Ok(ParamSet::Tc26Gost512C)
    );
    assert!(ParamSet::CryptoProA.same_curve(ParamSet::Tc26Gost256B));
    assert!(ParamSet::CryptoProXchA.same_curve(ParamSet::Tc26Gost256B));
    assert!(ParamSet::CryptoProB.same_curve(ParamSet::Tc26Gost256C));
    assert!(ParamSet::CryptoProC.same_curve(ParamSet::Tc26Gost256D));
    assert!(ParamSet::CryptoProXchB.same_curve(ParamSet::Tc26Gost256D));
    assert!(!ParamSet::Tc26Gost256A.same_curve(ParamSet::Tc26Gost256B));
    assert_eq!(ParamSet::Tc26Gost256A.cofactor(), 4);
    assert_eq!(ParamSet::Tc26Gost512C.cofactor(), 4);
    assert_eq!(ParamSet::Tc26Gost512A.cofactor(), 1);
    // Unknown or malformed OIDs.
    for bad in [
        &b""[..],
        &[0x06],
        &[0x06, 0x00],
        &[0x06, 0x09, 0x2A],
        &hex::decode("06092A8503070102010105").unwrap(), // 256 paramSet "E"
        &hex::decode("06082A8503070101020202").unwrap(), // wrong length byte
        &hex::decode("2A8503070101020299").unwrap(),
    ] {
        assert_eq!(
            ParamSet::from_oid(bad),
            Err(Error::UnknownParamSet),
            "{bad:02x?}"
        );
    }
}

#[test]
fn sign_verify_round_trip_every_paramset() {
    for &ps in ParamSet::all() {
        let n = ps.key_len();
        for _ in 0..4 {
            let key = SigningKey::generate(ps).unwrap();
            let vk = key.verifying_key();
            assert_eq!(vk.params(), ps);
            // Round trips of the PKCS#11 encodings.
            let d = key.to_le_bytes();
            assert_eq!(d.len(), n);
            let key2 = SigningKey::from_le_bytes(ps, &d).unwrap();
            assert_eq!(key2.verifying_key(), vk);
            let vk2 = VerifyingKey::from_le_bytes(ps, &vk.to_le_bytes()).unwrap();
            assert_eq!(&vk2, vk);

            let digest = random(n);
            let sig = key.sign_digest(&digest).unwrap();
            assert_eq!(sig.len(), 2 * n);
            vk.verify_digest(&digest, &sig).unwrap();
            // Fresh nonce each time.
            assert_ne!(sig, key.sign_digest(&digest).unwrap());

            // Any single bit flip of the signature or the digest fails.
            for _ in 0..8 {
                let bit = (random(2)[0] as usize * 256 + random(1)[0] as usize) % (16 * n);
                let mut bad = sig.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    vk.verify_digest(&digest, &bad),
                    Err(Error::InvalidSignature)
                );
                let bit = bit % (8 * n);
                let mut bad = digest.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(vk.verify_digest(&bad, &sig), Err(Error::InvalidSignature));
            }
            // Another key of the same curve does not verify it.
            let other = SigningKey::generate(ps).unwrap();
            assert!(other.verifying_key().verify_digest(&digest, &sig).is_err());
        }
    }
}

#[test]
fn aliases_interoperate() {
    for (a, b) in [
        (ParamSet::CryptoProA, ParamSet::Tc26Gost256B),
        (ParamSet::CryptoProXchA, ParamSet::Tc26Gost256B),
        (ParamSet::CryptoProB, ParamSet::Tc26Gost256C),
        (ParamSet::CryptoProC, ParamSet::Tc26Gost256D),
        (ParamSet::CryptoProXchB, ParamSet::Tc26Gost256D),
    ] {
        let key = SigningKey::generate(a).unwrap();
        let digest = random(32);
        let sig = key.sign_digest(&digest).unwrap();
        let vk = VerifyingKey::from_le_bytes(b, &key.verifying_key().to_le_bytes()).unwrap();
        vk.verify_digest(&digest, &sig).unwrap();
        let key_b = SigningKey::from_le_bytes(b, &key.to_le_bytes()).unwrap();
        assert_eq!(
            key_b.verifying_key().to_le_bytes(),
            key.verifying_key().to_le_bytes()
        );
    }
}

#[test]
fn r_and_s_out_of_range_are_rejected() {
    for &ps in ParamSet::all() {
        let n = ps.key_len();
        let q = order_be(ps);
        let key = SigningKey::generate(ps).unwrap();
        let vk = key.verifying_key();
        let digest = random(n);
        let sig = key.sign_digest(&digest).unwrap();
        let (s, r) = sig.split_at(n);
        let zero = vec![0u8; n];
        let ff = vec![0xFFu8; n];
        let q1 = add_be(&q, 1);
        let mut cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (zero.clone(), r.to_vec()),
            (s.to_vec(), zero.clone()),
            (zero.clone(), zero.clone()),
            (q.clone(), r.to_vec()),
            (s.to_vec(), q.clone()),
            (q1.clone(), r.to_vec()),
            (s.to_vec(), q1.clone()),
            (ff.clone(), r.to_vec()),
            (s.to_vec(), ff.clone()),
        ];
        // s + q and r + q (same residues mod q) when they still fit: must be refused.
        let sq = add_be_big(s, &q);
        let rq = add_be_big(r, &q);
        if let Some(sq) = sq {
            cases.push((sq, r.to_vec()));
        }
        if let Some(rq) = rq {
            cases.push((s.to_vec(), rq));
        }
        for (s2, r2) in cases {
            let mut bad = s2.clone();
            bad.extend_from_slice(&r2);
            assert_eq!(
                vk.verify_digest(&digest, &bad),
                Err(Error::InvalidSignature)
            );
        }
        // Wrong lengths.
        for len in [0, 1, n, 2 * n - 1, 2 * n + 1, 4 * n] {
            let bad = vec![1u8; len];
            assert_eq!(
                vk.verify_digest(&digest, &bad),
                Err(Error::InvalidSignature)
            );
        }
        for len in [0, 1, n - 1, n + 1, 2 * n] {
            assert_eq!(
                vk.verify_digest(&vec![0u8; len], &sig),
                Err(Error::InvalidDigestLength)
            );
            assert_eq!(
                key.sign_digest(&vec![0u8; len]),
                Err(Error::InvalidDigestLength)
            );
        }
    }
}

/// `a + b` (big-endian, equal lengths), `None` on overflow.
fn add_be_big(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; a.len()];
    let mut carry = 0u16;
    for i in (0..a.len()).rev() {
        let x = a[i] as u16 + b[i] as u16 + carry;
        out[i] = x as u8;
        carry = x >> 8;
    }
    (carry == 0).then_some(out)
}

#[test]
fn private_keys_outside_1_to_q_minus_1_are_rejected() {
    for &ps in ParamSet::all() {
        let n = ps.key_len();
        let q = order_be(ps);
        let le = |be: &[u8]| be.iter().rev().copied().collect::<Vec<u8>>();
        for bad_be in [vec![0u8; n], q.clone(), add_be(&q, 1), vec![0xFF; n]] {
            assert_eq!(
                SigningKey::from_le_bytes(ps, &le(&bad_be)).unwrap_err(),
                Error::InvalidPrivateKey
            );
        }
        for len in [0, 1, n - 1, n + 1] {
            assert_eq!(
                SigningKey::from_le_bytes(ps, &vec![1u8; len]).unwrap_err(),
                Error::InvalidPrivateKey
            );
        }
        // 1 and q - 1 are fine; d = 1 gives Q = P.
        let mut q_minus_1 = q.clone();
        *q_minus_1.last_mut().unwrap() -= 1; // q is odd
        SigningKey::from_le_bytes(ps, &le(&q_minus_1)).unwrap();
        let mut one = vec![0u8; n];
        one[0] = 1;
        let k1 = SigningKey::from_le_bytes(ps, &one).unwrap();
        let d = random(n);
        let sig = k1.sign_digest(&d).unwrap();
        k1.verifying_key().verify_digest(&d, &sig).unwrap();
    }
}

#[test]
fn bad_public_keys_are_rejected() {
    for &ps in ParamSet::all() {
        let n = ps.key_len();
        let key = SigningKey::generate(ps).unwrap();
        let good = key.verifying_key().to_le_bytes();
        // Lengths.
        for len in [0, 1, n, 2 * n - 1, 2 * n + 1] {
            assert_eq!(
                VerifyingKey::from_le_bytes(ps, &vec![1u8; len]),
                Err(Error::InvalidPublicKey)
            );
        }
        // Off the curve: y + 1, x + 1, all zero (the identity has no affine encoding).
        let mut bad = good.clone();
        bad[n] ^= 1;
        assert_eq!(
            VerifyingKey::from_le_bytes(ps, &bad),
            Err(Error::InvalidPublicKey)
        );
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(
            VerifyingKey::from_le_bytes(ps, &bad),
            Err(Error::InvalidPublicKey)
        );
        assert_eq!(
            VerifyingKey::from_le_bytes(ps, &vec![0u8; 2 * n]),
            Err(Error::InvalidPublicKey)
        );
        // Coordinates >= p (all ones is above every p here).
        let mut bad = good.clone();
        bad[..n].fill(0xFF);
        assert_eq!(
            VerifyingKey::from_le_bytes(ps, &bad),
            Err(Error::InvalidPublicKey)
        );
        let mut bad = good.clone();
        bad[n..].fill(0xFF);
        assert_eq!(
            VerifyingKey::from_le_bytes(ps, &bad),
            Err(Error::InvalidPublicKey)
        );
        // A key of another curve of the same size is (almost surely) not on this one.
        let other = ParamSet::all()
            .iter()
            .copied()
            .find(|o| o.bits() == ps.bits() && !o.same_curve(ps))
            .unwrap();
        let foreign = SigningKey::generate(other)
            .unwrap()
            .verifying_key()
            .to_le_bytes();
        assert_eq!(
            VerifyingKey::from_le_bytes(ps, &foreign),
            Err(Error::InvalidPublicKey)
        );
    }
}

#[test]
fn sign_with_nonce_rejects_bad_nonces() {
    for &ps in ParamSet::all() {
        let n = ps.key_len();
        let key = SigningKey::generate(ps).unwrap();
        let digest = random(n);
        let q = order_be(ps);
        for k in [
            vec![0u8; n],
            q.clone(),
            vec![0xFF; n],
            vec![1u8; n + 1],
            vec![],
        ] {
            assert_eq!(
                key.sign_digest_with_nonce(&digest, &k),
                Err(Error::InvalidNonce)
            );
        }
        let mut k = vec![0u8; n];
        k[n - 1] = 7;
        let sig = key.sign_digest_with_nonce(&digest, &k).unwrap();
        assert_eq!(sig, key.sign_digest_with_nonce(&digest, &k).unwrap());
        key.verifying_key().verify_digest(&digest, &sig).unwrap();
    }
}

/// A zero digest gives e = 0, which the standard replaces by 1 (RFC 7091 §6.1 step 2): the
/// signature of an all-zero digest must equal that of the digest encoding 1.
#[test]
fn zero_digest_means_e_equals_one() {
    for &ps in ParamSet::all() {
        let n = ps.key_len();
        let key = SigningKey::generate(ps).unwrap();
        let mut k = vec![0u8; n];
        k[n - 1] = 0x35;
        let zero = vec![0u8; n];
        let mut one = vec![0u8; n];
        one[0] = 1; // little-endian 1
        let a = key.sign_digest_with_nonce(&zero, &k).unwrap();
        let b = key.sign_digest_with_nonce(&one, &k).unwrap();
        assert_eq!(a, b);
        key.verifying_key().verify_digest(&zero, &a).unwrap();
    }
}

#[test]
fn vko_is_symmetric_on_every_curve() {
    for &ps in ParamSet::all() {
        let a = SigningKey::generate(ps).unwrap();
        let b = SigningKey::generate(ps).unwrap();
        for ukm in [random(8), random(ps.key_len()), vec![1]] {
            let ab = vko_256(&a, b.verifying_key(), &ukm).unwrap();
            let ba = vko_256(&b, a.verifying_key(), &ukm).unwrap();
            assert_eq!(ab, ba);
            let ab = vko_512(&a, b.verifying_key(), &ukm).unwrap();
            let ba = vko_512(&b, a.verifying_key(), &ukm).unwrap();
            assert_eq!(ab, ba);
        }
        let u1 = vko_256(&a, b.verifying_key(), &[1]).unwrap();
        let u2 = vko_256(&a, b.verifying_key(), &[2]).unwrap();
        assert_ne!(u1, u2);
        // UKM checks.
        let q_le: Vec<u8> = order_be(ps).into_iter().rev().collect();
        for bad in [vec![], vec![0u8; 8], vec![1u8; ps.key_len() + 1], q_le] {
            assert_eq!(vko_256(&a, b.verifying_key(), &bad), Err(Error::InvalidUkm));
        }
    }
    // Different curves.
    let a = SigningKey::generate(ParamSet::Tc26Gost256A).unwrap();
    let b = SigningKey::generate(ParamSet::Tc26Gost256B).unwrap();
    assert_eq!(
        vko_256(&a, b.verifying_key(), &[1]),
        Err(Error::CurveMismatch)
    );
    // Aliases are the same curve.
    let c = SigningKey::generate(ParamSet::CryptoProA).unwrap();
    assert_eq!(
        vko_256(&b, c.verifying_key(), &[3]),
        vko_256(&c, b.verifying_key(), &[3])
    );
}

/// Arbitrary bytes into every parser and checker: errors, never panics.
#[test]
fn arbitrary_input_never_panics() {
    for _ in 0..200 {
        let len = random(1)[0] as usize % 140;
        let junk = random(len);
        let _ = ParamSet::from_oid(&junk);
        for &ps in ParamSet::all() {
            let _ = SigningKey::from_le_bytes(ps, &junk);
            if let Ok(vk) = VerifyingKey::from_le_bytes(ps, &junk) {
                let _ = vk.verify_digest(&junk[..ps.key_len().min(junk.len())], &junk);
            }
        }
    }
    for &ps in ParamSet::all() {
        let key = SigningKey::generate(ps).unwrap();
        let vk = key.verifying_key();
        for _ in 0..50 {
            let len = random(1)[0] as usize % 140;
            let junk = random(len);
            let _ = vk.verify_digest(&junk, &junk);
            let _ = vk.verify_digest(&random(ps.key_len()), &random(ps.signature_len()));
            let _ = key.sign_digest(&junk);
            let _ = key.sign_digest_with_nonce(&random(ps.key_len()), &junk);
            let _ = vko_256(&key, vk, &junk);
        }
    }
}

#[test]
fn errors_display() {
    for e in [
        Error::UnknownParamSet,
        Error::InvalidPrivateKey,
        Error::InvalidPublicKey,
        Error::InvalidDigestLength,
        Error::InvalidSignature,
        Error::InvalidNonce,
        Error::InvalidUkm,
        Error::CurveMismatch,
        Error::KeyAgreementFailed,
        Error::Rng,
    ] {
        assert!(!e.to_string().is_empty());
    }
    // Debug of a signing key does not show the secret.
    let key = SigningKey::from_le_bytes(ParamSet::Tc26Gost256B, &[0x42; 32]).unwrap();
    assert!(!format!("{key:?}").contains("42"));
}

/// Keys are shared across PKCS#11 sessions and threads.
#[test]
fn keys_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<SigningKey>();
    check::<VerifyingKey>();
    check::<ParamSet>();
    check::<Error>();
    // Concurrent first use of a curve (the lazily built table) from several threads.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let key = SigningKey::generate(ParamSet::Tc26Gost512B).unwrap();
                let d = random(64);
                let sig = key.sign_digest(&d).unwrap();
                key.verifying_key().verify_digest(&d, &sig).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
