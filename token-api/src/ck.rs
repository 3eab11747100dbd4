//! PKCS#11 constants and C types.
//!
//! Everything standard comes from `cryptoki-sys` (PKCS#11 3.2 headers). The GOST R 34.10-2012 /
//! 34.11-2012 identifiers are TC26 vendor extensions that no OASIS header carries; they are
//! defined here with their source.
#![allow(non_camel_case_types)]

pub use cryptoki_sys::*;

/// `NSSCK_VENDOR_PKCS11_RU_TEAM` = `CKK_VENDOR_DEFINED | 0x54321000`.
///
/// Source: TC26 "Расширение PKCS#11 для использования российских стандартов ГОСТ Р 34.10-2012
/// и ГОСТ Р 34.11-2012" (2016); OpenSC `src/pkcs11/pkcs11.h` l.59-75; Aktiv
/// `Pkcs11Tc26Constants.java` ("derived from pkcs11tc26_12.h"). See `../shared/docs/gost-pkcs11.md` §1.2.
pub const NSSCK_VENDOR_PKCS11_RU_TEAM: CK_ULONG = 0xD432_1000;
/// Alias used by the TC26 and Rutoken headers.
pub const CK_VENDOR_PKCS11_RU_TEAM_TC26: CK_ULONG = NSSCK_VENDOR_PKCS11_RU_TEAM;

/// Key type of GOST R 34.10-2012 512-bit keys (TC26). 256-bit keys use `CKK_GOSTR3410` (0x30).
pub const CKK_GOSTR3410_512: CK_KEY_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x003;
/// Kuznyechik (GOST R 34.12-2015, 128-bit block) secret key (TC26 2018 set, Rutoken).
pub const CKK_KUZNYECHIK: CK_KEY_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x004;
/// Magma (GOST R 34.12-2015, 64-bit block) secret key (TC26 2018 set, Rutoken).
pub const CKK_MAGMA: CK_KEY_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x005;

/// PBKDF2 pseudo-random functions with HMAC-Streebog (TC26; JaCarta and Rutoken headers).
pub const CKP_PKCS5_PBKD2_HMAC_GOSTR3411_2012_256: CK_ULONG = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x002;
pub const CKP_PKCS5_PBKD2_HMAC_GOSTR3411_2012_512: CK_ULONG = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x003;

/// 512-bit GOST R 34.10-2012 key pair generation (TC26).
pub const CKM_GOSTR3410_512_KEY_PAIR_GEN: CK_MECHANISM_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x005;
/// 512-bit GOST R 34.10-2012 signature over a 64-byte digest (TC26).
pub const CKM_GOSTR3410_512: CK_MECHANISM_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x006;
/// VKO GOST R 34.10-2012 key agreement (TC26), parameter `CK_GOSTR3410_DERIVE_PARAMS`.
pub const CKM_GOSTR3410_12_DERIVE: CK_MECHANISM_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x007;
/// GOST R 34.10-2012 with GOST R 34.11-2012 (Streebog-256), message in (TC26).
pub const CKM_GOSTR3410_WITH_GOSTR3411_12_256: CK_MECHANISM_TYPE =
    NSSCK_VENDOR_PKCS11_RU_TEAM | 0x008;
/// GOST R 34.10-2012 (512) with GOST R 34.11-2012 (Streebog-512), message in (TC26).
pub const CKM_GOSTR3410_WITH_GOSTR3411_12_512: CK_MECHANISM_TYPE =
    NSSCK_VENDOR_PKCS11_RU_TEAM | 0x009;
/// Streebog-256 digest (TC26).
pub const CKM_GOSTR3411_12_256: CK_MECHANISM_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x012;
/// Streebog-512 digest (TC26).
pub const CKM_GOSTR3411_12_512: CK_MECHANISM_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x013;
/// HMAC with Streebog-256 (TC26).
pub const CKM_GOSTR3411_12_256_HMAC: CK_MECHANISM_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x014;
/// HMAC with Streebog-512 (TC26).
pub const CKM_GOSTR3411_12_512_HMAC: CK_MECHANISM_TYPE = NSSCK_VENDOR_PKCS11_RU_TEAM | 0x015;

/// `CKD_CPDIVERSIFY_KDF` (TC26 / Rutoken): the CryptoPro key diversification for VKO.
pub const CKD_CPDIVERSIFY_KDF: CK_ULONG = 0x0000_0009;

/// Aliases used by the Rutoken and JaCarta headers.
pub const CKK_GOSTR3410_256: CK_KEY_TYPE = CKK_GOSTR3410;
pub const CKM_GOSTR3410_256_KEY_PAIR_GEN: CK_MECHANISM_TYPE = CKM_GOSTR3410_KEY_PAIR_GEN;
pub const CKM_GOSTR3410_256: CK_MECHANISM_TYPE = CKM_GOSTR3410;

/// Klyuch's own vendor attributes (`CKA_VENDOR_DEFINED | "KLY" << 8`): read-only token counters.
/// Not used by any standard software; documented in the README.
pub const CKA_KLYUCH_BASE: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x4b4c_5900;

/// Klyuch's alias of `CKM_GOSTR3410_KEY_PAIR_GEN` (0x1200), in Klyuch's vendor range
/// (`CKM_VENDOR_DEFINED | "KLY" << 8 | 1`). The module treats it exactly as 0x1200 in
/// `C_GenerateKeyPair` and does not list it. It exists because the `cryptoki` crate (0.12), which
/// `klyuch keygen` uses, can name standard mechanisms only from its own table, where the GOST ones
/// are missing, and vendor mechanisms only at or above `CKM_VENDOR_DEFINED`.
pub const CKM_KLYUCH_GOSTR3410_256_KEY_PAIR_GEN: CK_MECHANISM_TYPE =
    CKM_VENDOR_DEFINED | 0x4b4c_5901;

/// The "unavailable information" marker for lengths (`CK_UNAVAILABLE_INFORMATION`, `~0UL`).
pub const UNAVAILABLE: CK_ULONG = CK_UNAVAILABLE_INFORMATION;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc26_values_match_the_published_numbers() {
        // gost-pkcs11.md §1.2 table.
        assert_eq!(CKK_GOSTR3410_512, 0xD432_1003);
        assert_eq!(CKM_GOSTR3410_512_KEY_PAIR_GEN, 0xD432_1005);
        assert_eq!(CKM_GOSTR3410_512, 0xD432_1006);
        assert_eq!(CKM_GOSTR3410_12_DERIVE, 0xD432_1007);
        assert_eq!(CKM_GOSTR3410_WITH_GOSTR3411_12_256, 0xD432_1008);
        assert_eq!(CKM_GOSTR3410_WITH_GOSTR3411_12_512, 0xD432_1009);
        assert_eq!(CKM_GOSTR3411_12_256, 0xD432_1012);
        assert_eq!(CKM_GOSTR3411_12_512, 0xD432_1013);
        assert_eq!(CKM_GOSTR3411_12_256_HMAC, 0xD432_1014);
        assert_eq!(CKM_GOSTR3411_12_512_HMAC, 0xD432_1015);
        assert_eq!(CKK_GOSTR3410, 0x30);
        assert_eq!(CKM_GOSTR3410_KEY_PAIR_GEN, 0x1200);
        assert_eq!(CKM_GOSTR3410, 0x1201);
    }
}
