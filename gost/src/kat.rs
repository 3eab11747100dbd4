//! Known-answer tests of the standard's examples with every intermediate value:
//! RFC 7091 §7.1 and §7.2 (= GOST R 34.10-2012 App. A.1 and A.2), numbers as printed there
//! (big-endian), copied from shared/docs/gost-pkcs11.md §4.3 where each was recomputed.

use elliptic_curve::ff::PrimeField;

use crate::arith::{self, GostCurve, Scalar};
use crate::curves::{test_256::GostTest256, test_512::GostTest512};
use crate::{ParamSet, SigningKey, VerifyingKey};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn sc<C: GostCurve>(s: &str) -> Scalar<C> {
    Option::from(arith::scalar_from_be::<C>(&h(s))).unwrap()
}

fn be<C: GostCurve>(x: &Scalar<C>) -> String {
    hex::encode_upper(x.to_repr())
}

struct Example {
    d: &'static str,
    qx: &'static str,
    qy: &'static str,
    e: &'static str,
    k: &'static str,
    cx: &'static str,
    cy: &'static str,
    r: &'static str,
    s: &'static str,
    v: &'static str,
    z1: &'static str,
    z2: &'static str,
}

/// RFC 7091 §7.1 (GOST R 34.10-2012 App. A.1), l = 256, id-GostR3410-2001-TestParamSet.
const A1: Example = Example {
    d: "7A929ADE789BB9BE10ED359DD39A72C11B60961F49397EEE1D19CE9891EC3B28",
    qx: "7F2B49E270DB6D90D8595BEC458B50C58585BA1D4E9B788F6689DBD8E56FD80B",
    qy: "26F1B489D6701DD185C8413A977B3CBBAF64D1C593D26627DFFB101A87FF77DA",
    e: "2DFBC1B372D89A1188C09C52E0EEC61FCE52032AB1022E8E67ECE6672B043EE5",
    k: "77105C9B20BCD3122823C8CF6FCC7B956DE33814E95B7FE64FED924594DCEAB3",
    cx: "41AA28D2F1AB148280CD9ED56FEDA41974053554A42767B83AD043FD39DC0493",
    cy: "489C375A9941A3049E33B34361DD204172AD98C3E5916DE27695D22A61FAE46E",
    r: "41AA28D2F1AB148280CD9ED56FEDA41974053554A42767B83AD043FD39DC0493",
    s: "01456C64BA4642A1653C235A98A60249BCD6D3F746B631DF928014F6C5BF9C40",
    v: "271A4EE429F84EBC423E388964555BB29D3BA53C7BF945E5FAC8F381706354C2",
    z1: "5358F8FFB38F7C09ABC782A2DF2A3927DA4077D07205F763682F3A76C9019B4F",
    z2: "03221B4FBBF6D101074EC14AFAC2D4F7EFAC4CF9FEC1ED11BAE336D27D527665",
};

/// RFC 7091 §7.2 (GOST R 34.10-2012 App. A.2), l = 512, id-tc26-gost-3410-12-512-paramSetTest.
const A2: Example = Example {
    d: "0BA6048AADAE241BA40936D47756D7C93091A0E8514669700EE7508E508B1020\
        72E8123B2200A0563322DAD2827E2714A2636B7BFD18AADFC62967821FA18DD4",
    qx: "115DC5BC96760C7B48598D8AB9E740D4C4A85A65BE33C1815B5C320C854621DD\
         5A515856D13314AF69BC5B924C8B4DDFF75C45415C1D9DD9DD33612CD530EFE1",
    qy: "37C7C90CD40B0F5621DC3AC1B751CFA0E2634FA0503B3D52639F5D7FB72AFD61\
         EA199441D943FFE7F0C70A2759A3CDB84C114E1F9339FDF27F35ECA93677BEEC",
    e: "3754F3CFACC9E0615C4F4A7C4D8DAB531B09B6F9C170C533A71D147035B0C591\
        7184EE536593F4414339976C647C5D5A407ADEDB1D560C4FC6777D2972075B8C",
    k: "0359E7F4B1410FEACC570456C6801496946312120B39D019D455986E364F3658\
        86748ED7A44B3E794434006011842286212273A6D14CF70EA3AF71BB1AE679F1",
    cx: "2F86FA60A081091A23DD795E1E3C689EE512A3C82EE0DCC2643C78EEA8FCACD3\
         5492558486B20F1C9EC197C90699850260C93BCBCD9C5C3317E19344E173AE36",
    cy: "0EB488140F7E2F4E35CF220BDBC75AE44F26F9C7DF52E82436BDE80A91831DA2\
         7C8100DAA876F9ADC0D28A82DD3826D4DC7F92E471DA23E55E0EBB3927C85BD6",
    r: "2F86FA60A081091A23DD795E1E3C689EE512A3C82EE0DCC2643C78EEA8FCACD3\
        5492558486B20F1C9EC197C90699850260C93BCBCD9C5C3317E19344E173AE36",
    s: "1081B394696FFE8E6585E7A9362D26B6325F56778AADBC081C0BFBE933D52FF5\
        823CE288E8C4F362526080DF7F70CE406A6EEB1F56919CB92A9853BDE73E5B4A",
    v: "30D212A9E25D1A80A0F238532CADF3E64D7EF4E782B6AD140AAF8BBD9BB47298\
        4595EEC87B2F3448A1999D5F0A6DE0E14A55AD875721EC8CFD504000B3A840FF",
    z1: "3D38E7262D69BB2AD24DD81EEA2F92E6348D619FA45007B175837CF13B026079\
         051A48A1A379188F37BA46CE12F7207F2A8345459FF960E1EBD5B4F2A34A6EEF",
    z2: "1A18A31602E6EAC0A9888C01941082AEFE296F840453D2603414C2A16EB6FC52\
         9D8D8372E50DC49D6C612CE1FF65BD58E1D2029F22690438CC36A76DDA444ACB",
};

fn clean(s: &str) -> String {
    s.split_whitespace().collect::<String>()
}

fn run_example<C: GostCurve>(params: ParamSet, ex: &Example) {
    let d = sc::<C>(ex.d);
    // Public key Q = d·P.
    let (qx, qy) = arith::public_point::<C>(&d).unwrap();
    assert_eq!(hex::encode_upper(qx), clean(ex.qx), "Qx");
    assert_eq!(hex::encode_upper(qy), clean(ex.qy), "Qy");
    let q = arith::point_from_be::<C>(&qx, &qy).unwrap();

    // The digest as Streebog would output it: e (= α here) little-endian (trap 1).
    let digest: Vec<u8> = h(ex.e).into_iter().rev().collect();
    let k = sc::<C>(ex.k);
    let out = arith::sign_with_k::<C>(&d, &digest, &k).unwrap();
    assert_eq!(be::<C>(&out.e), clean(ex.e), "e");
    assert_eq!(hex::encode_upper(out.cx), clean(ex.cx), "Cx");
    assert_eq!(hex::encode_upper(out.cy), clean(ex.cy), "Cy");
    assert_eq!(be::<C>(&out.r), clean(ex.r), "r");
    assert_eq!(be::<C>(&out.s), clean(ex.s), "s");

    // Verification intermediates.
    let v = arith::verify_rs::<C>(&q, &digest, &out.r, &out.s);
    assert_eq!(be::<C>(&v.e), clean(ex.e), "e (verify)");
    assert_eq!(be::<C>(&v.v), clean(ex.v), "v");
    assert_eq!(be::<C>(&v.z1), clean(ex.z1), "z1");
    assert_eq!(be::<C>(&v.z2), clean(ex.z2), "z2");
    let (cx2, cy2) = v.c.unwrap();
    assert_eq!(hex::encode_upper(cx2), clean(ex.cx), "C'x");
    assert_eq!(hex::encode_upper(cy2), clean(ex.cy), "C'y");
    assert!(v.ok, "R = r");

    // The same through the public, PKCS#11-shaped API.
    let d_le: Vec<u8> = h(ex.d).into_iter().rev().collect();
    let key = SigningKey::from_le_bytes(params, &d_le).unwrap();
    let sig = key.sign_digest_with_nonce(&digest, &h(ex.k)).unwrap();
    assert_eq!(
        hex::encode_upper(&sig),
        clean(ex.s) + &clean(ex.r),
        "s || r"
    );
    let mut q_le: Vec<u8> = h(ex.qx).into_iter().rev().collect();
    q_le.extend(h(ex.qy).into_iter().rev());
    assert_eq!(key.verifying_key().to_le_bytes(), q_le, "X_le || Y_le");
    let vk = VerifyingKey::from_le_bytes(params, &q_le).unwrap();
    vk.verify_digest(&digest, &sig).unwrap();
    // And a random-nonce signature of the same digest verifies too.
    vk.verify_digest(&digest, &key.sign_digest(&digest).unwrap())
        .unwrap();
}

#[test]
fn rfc7091_a1_every_intermediate_value() {
    run_example::<GostTest256>(ParamSet::Test256, &A1);
}

#[test]
fn rfc7091_a2_every_intermediate_value() {
    run_example::<GostTest512>(ParamSet::Test512, &A2);
}

/// gost-pkcs11.md §4.3: the PKCS#11 byte views of A.1 (C_Sign input, output, public CKA_VALUE).
#[test]
fn rfc7091_a1_pkcs11_bytes() {
    let digest = h("E53E042B67E6EC678E2E02B12A0352CE1FC6EEE0529CC088119AD872B3C1FB2D");
    let pubkey = h(
        "0BD86FE5D8DB89668F789B4E1DBA8585C5508B45EC5B59D8906DDB70E2492B7F\
                    DA77FF871A10FBDF2766D293C5D164AFBB3C7B973A41C885D11D70D689B4F126",
    );
    let sig = h(
        "01456C64BA4642A1653C235A98A60249BCD6D3F746B631DF928014F6C5BF9C40\
                 41AA28D2F1AB148280CD9ED56FEDA41974053554A42767B83AD043FD39DC0493",
    );
    let vk = VerifyingKey::from_le_bytes(ParamSet::Test256, &pubkey).unwrap();
    vk.verify_digest(&digest, &sig).unwrap();
    // The big-endian reading of the digest (the trap) must fail.
    let mut digest_be = digest.clone();
    digest_be.reverse();
    assert!(vk.verify_digest(&digest_be, &sig).is_err());
    // r || s order (the other trap) must fail.
    let mut swapped = sig[32..].to_vec();
    swapped.extend_from_slice(&sig[..32]);
    assert!(vk.verify_digest(&digest, &swapped).is_err());
}
