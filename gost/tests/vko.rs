//! VKO GOST R 34.10-2012 known answers: R 50.1.113-2016 App. A.2 = RFC 7836 App. B
//! (tc26-512-paramSetA keys, UKM 1d80603c8544c727 as little-endian bytes). The same vectors are
//! in GNU Nettle's `testsuite/gostdsa-vko-test.c` and pygost's tests.

use klyuch_gost::{ParamSet, SigningKey, VerifyingKey, vko_256, vko_512};

fn le(be_hex: &str) -> Vec<u8> {
    let mut v = hex::decode(be_hex).unwrap();
    v.reverse();
    v
}

/// Party A: private key x_A and public key x_A·P (big-endian, as the standard prints them).
const PRIV_A: &str = "67b63ca4ac8d2bb32618d89296c7476dbeb9f9048496f202b1902cf2ce41dbc2f847712d960483458d4b380867f426c7ca0ff5782702dbc44ee8fc72d9ec90c9";
const PUB_A_X: &str = "a7c0adb12743c10c3c1beb97c8f631242f7937a1deb6bce5e664e49261baccd3f5dc56ec53b2abb90ca1eb703078ba546655a8b99f79188d2021ffaba4edb0aa";
const PUB_A_Y: &str = "5adb1c63a4e4465e0bbefd897fb9016475934cfa0f8c95f992ea402d47921f46382d00481b720314b19d8c878e75d81b9763358dd304b2ed3a364e07a3134691";
/// Party B.
const PRIV_B: &str = "dbd09213a592da5bbfd8ed068cccccbbfbeda4feac96b9b4908591440b0714803b9eb763ef932266d4c0181a9b73eacf9013efc65ec07c888515f1b6f759c848";
const PUB_B_X: &str = "51a6d54ee932d176e87591121cce5f395cb2f2f147114d95f463c8a7ed74a9fc5ecd2325a35fb6387831ea66bc3d2aa42ede35872cc75372073a71b983e12f19";
const PUB_B_Y: &str = "793bde5bf72840ad22b02a363ae4772d4a52fc08ba1a20f7458a222a13bf98b53be002d1973f1e398ce46c17da6d00d9b6d0076f8284dcc42e599b4c413b8804";
const UKM: &str = "1d80603c8544c727";
const KEK_256: &str = "c9a9a77320e2cc559ed72dce6f47e2192ccea95fa648670582c054c0ef36c221";
const KEK_512: &str = "79f002a96940ce7bde3259a52e015297adaad84597a0d205b50e3e1719f97bfa7ee1d2661fa9979a5aa235b558a7e6d9f88f982dd63fc35a8ec0dd5e242d3bdf";

fn public(x: &str, y: &str) -> VerifyingKey {
    let mut xy = le(x);
    xy.extend(le(y));
    VerifyingKey::from_le_bytes(ParamSet::Tc26Gost512A, &xy).unwrap()
}

#[test]
fn vko_r50_1_113_2016_vectors() {
    let a = SigningKey::from_le_bytes(ParamSet::Tc26Gost512A, &le(PRIV_A)).unwrap();
    let b = SigningKey::from_le_bytes(ParamSet::Tc26Gost512A, &le(PRIV_B)).unwrap();
    let pub_a = public(PUB_A_X, PUB_A_Y);
    let pub_b = public(PUB_B_X, PUB_B_Y);
    assert_eq!(a.verifying_key(), &pub_a);
    assert_eq!(b.verifying_key(), &pub_b);
    let ukm = hex::decode(UKM).unwrap();
    assert_eq!(hex::encode(vko_256(&a, &pub_b, &ukm).unwrap()), KEK_256);
    assert_eq!(hex::encode(vko_256(&b, &pub_a, &ukm).unwrap()), KEK_256);
    assert_eq!(hex::encode(vko_512(&a, &pub_b, &ukm).unwrap()), KEK_512);
    assert_eq!(hex::encode(vko_512(&b, &pub_a, &ukm).unwrap()), KEK_512);
}
