//! Subject names for certification requests, with the attributes a Russian qualified
//! certificate carries, each encoded with the ASN.1 string type its rules require.
//!
//! Sources of the attribute types and encodings:
//! * X.520 / RFC 4519 §2 (with RFC 5280 §4.1.2.4 and App. A.1 for the string types):
//!   CN commonName 2.5.4.3, SN surname 2.5.4.4, serialNumber 2.5.4.5 (PrintableString),
//!   C countryName 2.5.4.6 (PrintableString, two letters, ISO 3166), L localityName 2.5.4.7,
//!   ST stateOrProvinceName 2.5.4.8, STREET streetAddress 2.5.4.9, O organizationName 2.5.4.10,
//!   OU organizationalUnitName 2.5.4.11, T title 2.5.4.12, G givenName 2.5.4.42. DirectoryString
//!   values are written as UTF8String (RFC 5280 §4.1.2.4: "CAs MUST use UTF8String").
//! * PKCS#9 (RFC 2985 §5.2.1): E emailAddress 1.2.840.113549.1.9.1, IA5String.
//! * Order of the FSB of Russia No. 795 of 27 December 2011, "Requirements for the form of a
//!   qualified certificate" (Приказ ФСБ России от 27.12.2011 № 795), §§ on the subject name:
//!   OGRN 1.2.643.100.1 (NumericString, 13 digits), SNILS 1.2.643.100.3 (NumericString,
//!   11 digits), INN 1.2.643.3.131.1.1 (NumericString, 12 digits), OGRNIP 1.2.643.100.5
//!   (NumericString, 15 digits); as amended by FSB order No. 31 of 29 January 2021: INNLE
//!   ("ИНН ЮЛ", the INN of a legal entity) 1.2.643.100.4 (NumericString, 10 digits).
//!   OpenSSL's object table has the same numbers (`obj_mac.h`: NID_INN 1004 = 1.2.643.3.131.1.1,
//!   NID_OGRN 1005 = 1.2.643.100.1, NID_SNILS 1006 = 1.2.643.100.3, NID_OGRNIP 1226 =
//!   1.2.643.100.5; OpenSSL 3.0 has no name for 1.2.643.100.4 and prints it by number).
//!
//! Accepted syntaxes: OpenSSL's `/C=RU/O=Org/CN=Name` (most significant RDN first, as
//! `openssl req -subj` takes it; `\/` escapes a slash) and RFC 4514 `CN=Name,O=Org,C=RU`
//! (most specific first; `\,` and `\XX` escapes). Types are matched without regard to case;
//! a dotted OID (`1.2.643.100.3=...`) is accepted too.

use crate::error::{CliError, Result};
use const_oid::ObjectIdentifier;
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode, Tag};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

/// How a value is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Utf8,
    Printable,
    /// Two letters (countryName).
    Country,
    Ia5,
    /// NumericString of exactly this many digits.
    Digits(usize),
}

/// (names, OID, encoding). The first name is the one shown in messages.
const TYPES: &[(&[&str], &str, Kind)] = &[
    (&["CN", "commonName"], "2.5.4.3", Kind::Utf8),
    (&["SN", "surname"], "2.5.4.4", Kind::Utf8),
    (&["serialNumber"], "2.5.4.5", Kind::Printable),
    (&["C", "countryName"], "2.5.4.6", Kind::Country),
    (&["L", "localityName"], "2.5.4.7", Kind::Utf8),
    (&["ST", "S", "stateOrProvinceName"], "2.5.4.8", Kind::Utf8),
    (&["STREET", "streetAddress"], "2.5.4.9", Kind::Utf8),
    (&["O", "organizationName"], "2.5.4.10", Kind::Utf8),
    (&["OU", "organizationalUnitName"], "2.5.4.11", Kind::Utf8),
    (&["T", "title"], "2.5.4.12", Kind::Utf8),
    (&["G", "GN", "givenName"], "2.5.4.42", Kind::Utf8),
    (&["E", "emailAddress"], "1.2.840.113549.1.9.1", Kind::Ia5),
    (&["OGRN"], "1.2.643.100.1", Kind::Digits(13)),
    (&["SNILS"], "1.2.643.100.3", Kind::Digits(11)),
    (&["INNLE"], "1.2.643.100.4", Kind::Digits(10)),
    (&["OGRNIP"], "1.2.643.100.5", Kind::Digits(15)),
    (&["INN"], "1.2.643.3.131.1.1", Kind::Digits(12)),
];

/// The type names `--subject` knows, for help texts.
pub const KNOWN: &str =
    "CN, SN, G, C, ST, L, STREET, O, OU, T, E, serialNumber, SNILS, INN, INNLE, OGRN, OGRNIP";

fn lookup(ty: &str) -> Result<(ObjectIdentifier, Kind, String)> {
    for (names, oid, kind) in TYPES {
        if names.iter().any(|n| n.eq_ignore_ascii_case(ty)) {
            return Ok((
                ObjectIdentifier::new_unwrap(oid),
                *kind,
                names[0].to_string(),
            ));
        }
    }
    if ty.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        let oid = ObjectIdentifier::new(ty)
            .map_err(|_| CliError::usage(format!("bad attribute OID {ty:?} in --subject")))?;
        let known = TYPES.iter().find(|(_, o, _)| *o == ty);
        return Ok(match known {
            Some((names, _, kind)) => (oid, *kind, names[0].to_string()),
            None => (oid, Kind::Utf8, ty.to_string()),
        });
    }
    Err(CliError::usage(format!(
        "unknown attribute type {ty:?} in --subject (known: {KNOWN}, or a dotted OID)"
    )))
}

/// Encode one value as its type requires.
fn encode_value(kind: Kind, name: &str, value: &str) -> Result<Any> {
    let bad = |why: String| CliError::usage(format!("--subject {name}={value:?}: {why}"));
    let (tag, bytes) = match kind {
        Kind::Utf8 => (Tag::Utf8String, value.as_bytes()),
        Kind::Printable | Kind::Country => {
            // PrintableString (X.680 §41.4): A-Z a-z 0-9 space ' ( ) + , - . / : = ?
            let ok = value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
            if !ok {
                return Err(bad(
                    "only Latin letters, digits and ' ()+,-./:=? are allowed (PrintableString)"
                        .into(),
                ));
            }
            if kind == Kind::Country
                && !(value.len() == 2 && value.chars().all(|c| c.is_ascii_alphabetic()))
            {
                return Err(bad(
                    "the country is a two-letter ISO 3166 code such as RU".into()
                ));
            }
            (Tag::PrintableString, value.as_bytes())
        }
        Kind::Ia5 => {
            if !value.is_ascii() {
                return Err(bad("only ASCII is allowed (IA5String)".into()));
            }
            (Tag::Ia5String, value.as_bytes())
        }
        Kind::Digits(n) => {
            if value.len() != n || !value.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad(format!("{name} is exactly {n} digits (NumericString)")));
            }
            (Tag::NumericString, value.as_bytes())
        }
    };
    if bytes.is_empty() {
        return Err(bad("the value is empty".into()));
    }
    Any::new(tag, bytes).map_err(|e| bad(e.to_string()))
}

/// Split OpenSSL's "/A=1/B=2" (most significant first) into (type, value) pairs.
fn split_slashes(rest: &str) -> Result<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some() => cur.push(chars.next().unwrap_or('\\')),
            '/' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(t, v)| (t.trim().to_string(), v.to_string()))
                .ok_or_else(|| CliError::usage(format!("bad --subject part {p:?}: no '='")))
        })
        .collect()
}

/// Split RFC 4514 "CN=a,O=b" into (type, value) pairs, most significant first.
fn split_4514(s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur = Vec::<u8>::new();
    let b = s.as_bytes();
    let mut i = 0;
    let mut push = |cur: &mut Vec<u8>| -> Result<()> {
        let text = String::from_utf8(std::mem::take(cur))
            .map_err(|_| CliError::usage("--subject is not UTF-8 after unescaping"))?;
        let (t, v) = text
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("bad --subject part {text:?}: no '='")))?;
        out.push((t.trim().to_string(), v.to_string()));
        Ok(())
    };
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(h) = hex {
                    cur.push(h);
                    i += 3;
                } else if let Some(&c) = b.get(i + 1) {
                    cur.push(c);
                    i += 2;
                } else {
                    return Err(CliError::usage("--subject ends with a lone backslash"));
                }
            }
            b',' | b';' => {
                push(&mut cur)?;
                i += 1;
            }
            b'+' => {
                return Err(CliError::usage(
                    "multi-valued RDNs ('+') are not supported in --subject; escape a plus \
                     sign in a value as \\+",
                ));
            }
            c => {
                cur.push(c);
                i += 1;
            }
        }
    }
    push(&mut cur)?;
    out.reverse();
    Ok(out)
}

/// Parse `--subject` into a Name (one attribute per RDN, in the order given).
pub fn parse_subject(s: &str) -> Result<Name> {
    let pairs = match s.strip_prefix('/') {
        Some(rest) => split_slashes(rest)?,
        None => split_4514(s)?,
    };
    if pairs.is_empty() {
        return Err(CliError::usage("--subject is empty"));
    }
    let mut rdns = Vec::with_capacity(pairs.len());
    for (ty, value) in &pairs {
        let (oid, kind, name) = lookup(ty)?;
        let atv = AttributeTypeAndValue {
            oid,
            value: encode_value(kind, &name, value)?,
        };
        let mut set = SetOfVec::new();
        set.insert(atv)
            .map_err(|e| CliError::new(format!("cannot encode the subject: {e}")))?;
        rdns.push(RelativeDistinguishedName::from(set));
    }
    let seq = RdnSequence::from(rdns);
    let der = seq
        .to_der()
        .map_err(|e| CliError::new(format!("cannot encode the subject: {e}")))?;
    Name::from_der(&der).map_err(|e| CliError::new(format!("cannot encode the subject: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Tagged;

    fn tags(n: &Name) -> Vec<(String, Tag)> {
        n.iter()
            .map(|a| (a.oid.to_string(), a.value.tag()))
            .collect()
    }

    #[test]
    fn openssl_and_rfc4514_forms_agree() {
        let n = parse_subject("/C=RU/O=Klyuch, Demo/CN=Иван Петров").unwrap();
        assert_eq!(n.to_string(), "CN=Иван Петров,O=Klyuch\\, Demo,C=RU");
        let m = parse_subject("CN=Иван Петров,O=Klyuch\\, Demo,C=RU").unwrap();
        assert_eq!(n.to_der().unwrap(), m.to_der().unwrap());
        assert!(parse_subject("/").is_err());
        assert!(parse_subject("/CN").is_err());
        let s = parse_subject("/CN=a\\/b").unwrap();
        assert_eq!(s.to_string(), "CN=a/b");
    }

    #[test]
    fn qualified_attributes_and_their_string_types() {
        let n = parse_subject(
            "/C=RU/ST=77 Москва/L=Москва/O=ООО Ромашка/OU=Бухгалтерия/T=Главный бухгалтер\
             /SN=Петров/G=Иван Сергеевич/CN=Петров Иван Сергеевич/SNILS=12345678901\
             /INN=123456789012/INNLE=1234567890/OGRN=1234567890123/OGRNIP=123456789012345\
             /E=ivan@example.ru",
        )
        .unwrap();
        let t = tags(&n);
        let want = [
            ("2.5.4.6", Tag::PrintableString),
            ("2.5.4.8", Tag::Utf8String),
            ("2.5.4.7", Tag::Utf8String),
            ("2.5.4.10", Tag::Utf8String),
            ("2.5.4.11", Tag::Utf8String),
            ("2.5.4.12", Tag::Utf8String),
            ("2.5.4.4", Tag::Utf8String),
            ("2.5.4.42", Tag::Utf8String),
            ("2.5.4.3", Tag::Utf8String),
            ("1.2.643.100.3", Tag::NumericString),
            ("1.2.643.3.131.1.1", Tag::NumericString),
            ("1.2.643.100.4", Tag::NumericString),
            ("1.2.643.100.1", Tag::NumericString),
            ("1.2.643.100.5", Tag::NumericString),
            ("1.2.840.113549.1.9.1", Tag::Ia5String),
        ];
        let want: Vec<(String, Tag)> = want.iter().map(|(o, t)| (o.to_string(), *t)).collect();
        assert_eq!(t, want);
        // by OID, case-insensitive names
        let a = parse_subject("/1.2.643.100.3=12345678901/cn=x").unwrap();
        assert_eq!(tags(&a)[0], ("1.2.643.100.3".into(), Tag::NumericString));
        // bad values
        for bad in [
            "/SNILS=123-456-789 01",
            "/SNILS=1234567890",
            "/INN=12345",
            "/OGRN=abc",
            "/C=RUS",
            "/C=РФ",
            "/E=иван@пример.рф",
            "/FOO=bar",
            "CN=a+O=b",
        ] {
            assert!(parse_subject(bad).is_err(), "{bad}");
        }
    }
}
