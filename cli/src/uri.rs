//! PKCS#11 URIs (RFC 7512) naming a key: `pkcs11:token=L;id=%01;object=name;type=private`.
//!
//! Path attributes understood (RFC 7512 §2.3): `token`, `serial`, `manufacturer`, `model`,
//! `slot-id`, `id`, `object`, `type`; query attributes: `pin-value`, `pin-source` (a file name
//! or a `file:` URI). Unknown path attributes are an error (a typo must not select another key);
//! unknown query attributes are ignored, as RFC 7512 §2.4 allows ("module-name", ...).
//! Values are percent-decoded (§2.3: pk11-pchar, `%XX`).

use crate::ctx::TokenSelector;
use crate::error::{CliError, Result};
use secrecy::SecretString;
use std::path::PathBuf;

/// A parsed `pkcs11:` URI.
#[derive(Clone, Debug, Default)]
pub struct KeyUri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    /// `CKA_ID`, raw bytes.
    pub id: Option<Vec<u8>>,
    /// `CKA_LABEL`.
    pub object: Option<String>,
    /// `private`, `public`, `cert`, `secret-key`, `data`.
    pub kind: Option<String>,
    pub pin_value: Option<SecretString>,
    pub pin_source: Option<PathBuf>,
}

fn percent_decode(s: &str, what: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    CliError::usage(format!("bad percent escape in the URI attribute {what}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(s: &str, what: &str) -> Result<String> {
    String::from_utf8(percent_decode(s, what)?)
        .map_err(|_| CliError::usage(format!("the URI attribute {what} is not UTF-8")))
}

/// Parse a `pkcs11:` URI.
pub fn parse(uri: &str) -> Result<KeyUri> {
    let rest = uri
        .strip_prefix("pkcs11:")
        .or_else(|| uri.strip_prefix("PKCS11:"))
        .ok_or_else(|| {
            CliError::usage(format!(
                "{uri:?} is not a PKCS#11 URI (like 'pkcs11:token=NAME;id=%01')"
            ))
        })?;
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let mut k = KeyUri::default();
    for part in path.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "bad URI part {part:?}: no '=' (RFC 7512 attributes are name=value)"
            ))
        })?;
        match name {
            "token" => k.token = Some(text(value, name)?),
            "serial" => k.serial = Some(text(value, name)?),
            "manufacturer" => k.manufacturer = Some(text(value, name)?),
            "model" => k.model = Some(text(value, name)?),
            "slot-id" => {
                k.slot_id = Some(text(value, name)?.parse().map_err(|_| {
                    CliError::usage(format!("slot-id={value} in the URI is not a number"))
                })?)
            }
            "id" => k.id = Some(percent_decode(value, name)?),
            "object" => k.object = Some(text(value, name)?),
            "type" => {
                let t = text(value, name)?;
                if !matches!(
                    t.as_str(),
                    "private" | "public" | "cert" | "secret-key" | "data"
                ) {
                    return Err(CliError::usage(format!(
                        "type={t} in the URI: RFC 7512 types are private, public, cert, \
                         secret-key, data"
                    )));
                }
                k.kind = Some(t);
            }
            // Accepted and not used for key selection.
            "library-description"
            | "library-manufacturer"
            | "library-version"
            | "slot-description"
            | "slot-manufacturer" => {}
            other => {
                return Err(CliError::usage(format!(
                    "unknown attribute {other:?} in the PKCS#11 URI (known: token, serial, \
                     manufacturer, model, slot-id, id, object, type)"
                )));
            }
        }
    }
    for part in query.into_iter().flat_map(|q| q.split('&')) {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        match name {
            "pin-value" => {
                let v = zeroize::Zeroizing::new(text(value, name)?);
                k.pin_value = Some(SecretString::from(v.as_str()));
            }
            "pin-source" => {
                let v = text(value, name)?;
                let p = v.strip_prefix("file:").unwrap_or(&v);
                let p = p.strip_prefix("//").unwrap_or(p);
                k.pin_source = Some(PathBuf::from(p));
            }
            _ => {}
        }
    }
    Ok(k)
}

impl KeyUri {
    /// The token the URI names, merged with `--slot`/`--token` (which must agree).
    pub fn selector(&self, global: &TokenSelector) -> Result<TokenSelector> {
        let mut sel = global.clone();
        if let Some(t) = &self.token {
            if let Some(g) = &global.token
                && g != t
            {
                return Err(CliError::usage(format!(
                    "--token {g:?} and the URI's token={t:?} disagree"
                )));
            }
            sel.token = Some(t.clone());
        }
        if let Some(s) = self.slot_id {
            if let Some(g) = global.slot
                && g != s
            {
                return Err(CliError::usage(format!(
                    "--slot {g} and the URI's slot-id={s} disagree"
                )));
            }
            sel.slot = Some(s);
        }
        Ok(sel)
    }

    /// `--pin` style arguments with the URI's pin-value / pin-source filled in when the
    /// command line gives none.
    pub fn pin_args(&self, given: &crate::pin::UserPinArgs) -> crate::pin::UserPinArgs {
        let mut a = given.clone();
        if a.pin.is_none() && a.pin_file.is_none() {
            a.pin = self.pin_value.clone();
            a.pin_file = self.pin_source.clone();
        }
        a
    }

    /// Does a token with this info match the URI's token attributes?
    pub fn token_matches(&self, info: &cryptoki::slot::TokenInfo) -> bool {
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| w == have.trim_end_matches([' ', '\0']))
        };
        eq(&self.serial, info.serial_number())
            && eq(&self.manufacturer, info.manufacturer_id())
            && eq(&self.model, info.model())
    }
}

/// The private key a command signs with: by `CKA_ID` and/or `CKA_LABEL` (logged-in session).
/// Returns its handle and its `CKA_ID`. None or several matching is an error in words.
pub fn find_private_key(
    session: &cryptoki::session::Session,
    id: Option<&[u8]>,
    label: Option<&str>,
) -> Result<(cryptoki::object::ObjectHandle, Vec<u8>)> {
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    if id.is_none() && label.is_none() {
        return Err(CliError::usage(
            "the key URI names no key: give id=%NN or object=LABEL (e.g. \
             'pkcs11:token=L;id=%01')",
        ));
    }
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    if let Some(l) = label {
        template.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    let what = match (id, label) {
        (Some(i), Some(l)) => format!("ID {} and label \"{l}\"", hex::encode(i)),
        (Some(i), None) => format!("ID {}", hex::encode(i)),
        (None, Some(l)) => format!("label \"{l}\""),
        (None, None) => String::new(),
    };
    let found = session.find_objects(&template)?;
    match found.len() {
        0 => Err(CliError::new(format!(
            "no private key with {what} on the token; `klyuch objects --login` lists them"
        ))),
        1 => {
            let h = found[0];
            let key_id = session
                .get_attributes(h, &[AttributeType::Id])?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::Id(v) => Some(v),
                    _ => None,
                })
                .unwrap_or_default();
            Ok((h, key_id))
        }
        n => Err(CliError::new(format!(
            "{n} private keys have {what}; name one by its id= in the URI"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn parses_rfc7512_examples() {
        let k = parse("pkcs11:token=My%20token;id=%01%a2;object=sign%3bkey;type=private").unwrap();
        assert_eq!(k.token.as_deref(), Some("My token"));
        assert_eq!(k.id, Some(vec![0x01, 0xa2]));
        assert_eq!(k.object.as_deref(), Some("sign;key"));
        assert_eq!(k.kind.as_deref(), Some("private"));
        let k = parse("pkcs11:id=%01?pin-value=1234&module-name=x").unwrap();
        assert_eq!(k.pin_value.unwrap().expose_secret(), "1234");
        let k = parse("pkcs11:object=a?pin-source=file:/tmp/pin").unwrap();
        assert_eq!(k.pin_source, Some(PathBuf::from("/tmp/pin")));
        assert!(parse("pkcs11:frob=1").is_err());
        assert!(parse("pkcs11:id=%0").is_err());
        assert!(parse("token=a").is_err());
        assert!(parse("pkcs11:type=key").is_err());
        let k = parse("pkcs11:slot-id=3").unwrap();
        let sel = k.selector(&TokenSelector::default()).unwrap();
        assert_eq!(sel.slot, Some(3));
        assert!(
            k.selector(&TokenSelector {
                slot: Some(4),
                token: None
            })
            .is_err()
        );
    }
}
