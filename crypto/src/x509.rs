//! X.509 certificates (parsed with `x509-cert`) to PKCS#11 attributes.

use token_api::{Result, Template};

/// The attributes PKCS#11 takes from a certificate's DER: `CKA_SUBJECT`, `CKA_ISSUER`,
/// `CKA_SERIAL_NUMBER` (the DER INTEGER), `CKA_START_DATE` / `CKA_END_DATE` (`CK_DATE`, from
/// notBefore / notAfter), `CKA_PUBLIC_KEY_INFO` (the SPKI DER), `CKA_CERTIFICATE_TYPE` = X.509.
/// Malformed DER gives `CKR_ATTRIBUTE_VALUE_INVALID`.
pub fn certificate_attributes(_der: &[u8]) -> Result<Template> {
    todo!()
}

/// The public key object attributes (`CKA_KEY_TYPE` and components, e.g. `CKA_MODULUS` +
/// `CKA_PUBLIC_EXPONENT`, `CKA_EC_PARAMS` + `CKA_EC_POINT`, `CKA_GOSTR3410_PARAMS` +
/// `CKA_GOSTR3411_PARAMS` + `CKA_VALUE`) of a SubjectPublicKeyInfo in DER.
pub fn public_key_attributes(_spki_der: &[u8]) -> Result<Template> {
    todo!()
}
