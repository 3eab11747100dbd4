//! `klyuch objects`: what a token holds, as a table or JSON.

use crate::ctx::{Ctx, TokenSelector};
use crate::describe::{self, CertSummary};
use crate::error::Result;
use crate::pin::UserPinArgs;
use clap::Args;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use serde::Serialize;
use std::path::Path;

#[derive(Args, Debug)]
pub struct ObjectsArgs {
    /// Log in with the user PIN to include private objects (private keys, usually)
    #[arg(long)]
    pub login: bool,
    /// Print JSON (one array of objects) instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

/// One object, as shown to the user.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ObjectInfo {
    #[serde(skip)]
    pub handle: Option<ObjectHandle>,
    /// cert, pubkey, privkey, secretkey, data, or the class number.
    pub class: String,
    pub label: String,
    /// Hex.
    pub id: String,
    /// "RSA", "EC", "EdDSA", "AES", "GOST R 34.10-2012 256", ...
    pub key_type: Option<String>,
    /// Key size in bits (RSA modulus, secret key length, curve size).
    pub bits: Option<usize>,
    /// EC curve name, or GOST parameter set name.
    pub curve: Option<String>,
    pub token: bool,
    pub private: bool,
    /// "sign", "verify", "decrypt", ... for keys; "sensitive", "extractable" for secrets.
    pub flags: Vec<&'static str>,
    /// For certificates.
    pub certificate: Option<CertSummary>,
    /// For data objects: CKA_APPLICATION.
    pub application: Option<String>,
}

pub fn class_name(c: CK_OBJECT_CLASS) -> String {
    match c {
        CKO_CERTIFICATE => "cert".into(),
        CKO_PUBLIC_KEY => "pubkey".into(),
        CKO_PRIVATE_KEY => "privkey".into(),
        CKO_SECRET_KEY => "secretkey".into(),
        CKO_DATA => "data".into(),
        CKO_DOMAIN_PARAMETERS => "domain-params".into(),
        CKO_MECHANISM => "mechanism".into(),
        CKO_HW_FEATURE => "hw-feature".into(),
        CKO_PROFILE => "profile".into(),
        other => format!("class {other:#x}"),
    }
}

fn common_types() -> Vec<AttributeType> {
    vec![
        AttributeType::Class,
        AttributeType::Label,
        AttributeType::Id,
        AttributeType::Token,
        AttributeType::Private,
    ]
}

/// Read what the table shows about one object. Attributes a module does not have for this
/// object are simply left out (cryptoki skips them).
pub fn describe_object(session: &Session, handle: ObjectHandle) -> Result<ObjectInfo> {
    let mut info = ObjectInfo {
        handle: Some(handle),
        ..ObjectInfo::default()
    };
    let mut class = None;
    for a in session.get_attributes(handle, &common_types())? {
        match a {
            Attribute::Class(c) => class = Some(CK_OBJECT_CLASS::from(c)),
            Attribute::Label(l) => info.label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::Id(id) => info.id = hex::encode(id),
            Attribute::Token(t) => info.token = t,
            Attribute::Private(p) => info.private = p,
            _ => {}
        }
    }
    let class = class.unwrap_or(CK_UNAVAILABLE_INFORMATION);
    info.class = class_name(class);
    let more: Vec<AttributeType> = match class {
        CKO_PRIVATE_KEY | CKO_PUBLIC_KEY | CKO_SECRET_KEY => vec![
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::ModulusBits,
            AttributeType::EcParams,
            AttributeType::ValueLen,
            AttributeType::PublicKeyInfo,
            AttributeType::Sign,
            AttributeType::Verify,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
            AttributeType::Wrap,
            AttributeType::Unwrap,
            AttributeType::Derive,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::AlwaysAuthenticate,
        ],
        CKO_CERTIFICATE => vec![AttributeType::CertificateType, AttributeType::Value],
        CKO_DATA => vec![AttributeType::Application],
        _ => vec![],
    };
    if more.is_empty() {
        return Ok(info);
    }
    let mut key_type = None;
    let mut spki = None;
    let mut is_x509 = false;
    let mut value = None;
    for a in session.get_attributes(handle, &more)? {
        match a {
            Attribute::KeyType(k) => key_type = Some(CK_KEY_TYPE::from(k)),
            Attribute::Modulus(m) if !m.is_empty() => {
                info.bits = Some(describe::bit_len(&m));
            }
            Attribute::ModulusBits(b) if info.bits.is_none() => {
                info.bits = Some(CK_ULONG::from(b) as usize);
            }
            Attribute::EcParams(p) if !p.is_empty() => {
                info.curve = Some(describe::ec_params_name(&p));
            }
            Attribute::ValueLen(n) if class == CKO_SECRET_KEY => {
                info.bits = Some(CK_ULONG::from(n) as usize * 8);
            }
            Attribute::PublicKeyInfo(s) if !s.is_empty() => spki = Some(s),
            Attribute::Sign(true) => info.flags.push("sign"),
            Attribute::Verify(true) => info.flags.push("verify"),
            Attribute::Encrypt(true) => info.flags.push("encrypt"),
            Attribute::Decrypt(true) => info.flags.push("decrypt"),
            Attribute::Wrap(true) => info.flags.push("wrap"),
            Attribute::Unwrap(true) => info.flags.push("unwrap"),
            Attribute::Derive(true) => info.flags.push("derive"),
            Attribute::Sensitive(true) => info.flags.push("sensitive"),
            Attribute::Extractable(true) if class != CKO_PUBLIC_KEY => {
                info.flags.push("extractable")
            }
            Attribute::AlwaysAuthenticate(true) => info.flags.push("always-authenticate"),
            Attribute::CertificateType(t) => is_x509 = t == CertificateType::X_509,
            Attribute::Value(v) => value = Some(v),
            Attribute::Application(a) => {
                info.application = Some(String::from_utf8_lossy(&a).into_owned())
            }
            _ => {}
        }
    }
    if let Some(kt) = key_type {
        info.key_type = Some(describe::key_type_name(kt));
        if kt == CKK_GOSTR3410 || kt == describe::CKK_GOSTR3410_512 {
            // cryptoki 0.12 cannot read CKA_GOSTR3410_PARAMS; the SPKI names the set too.
            info.curve = spki.as_deref().and_then(describe::spki_gost_paramset);
            info.bits = Some(if kt == CKK_GOSTR3410 { 256 } else { 512 });
        }
        if kt == CKK_EC_EDWARDS {
            if let Some(c) = &info.curve {
                info.key_type = Some(c.clone());
                info.bits = Some(if c == "Ed448" { 448 } else { 255 });
                info.curve = None;
            }
        }
        if kt == CKK_EC {
            info.bits = match info.curve.as_deref() {
                Some("P-256") | Some("secp256k1") | Some("brainpoolP256r1") => Some(256),
                Some("P-384") | Some("brainpoolP384r1") => Some(384),
                Some("P-521") => Some(521),
                Some("brainpoolP512r1") => Some(512),
                Some("P-224") => Some(224),
                Some("P-192") => Some(192),
                _ => None,
            };
        }
    }
    if class == CKO_CERTIFICATE {
        info.key_type = Some(if is_x509 { "X.509" } else { "other" }.into());
        if is_x509 {
            info.certificate = value.as_deref().and_then(describe::cert_summary);
        }
    }
    Ok(info)
}

/// All objects the session sees.
pub fn list(session: &Session) -> Result<Vec<ObjectInfo>> {
    let handles = session.find_objects(&[])?;
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(describe_object(session, h)?);
    }
    // GOST keys without CKA_PUBLIC_KEY_INFO: their certificate names the parameter set.
    let from_certs: Vec<(String, String)> = out
        .iter()
        .filter_map(|o| {
            let c = o.certificate.as_ref()?;
            let set = c.gost_paramset.clone()?;
            Some((o.id.clone(), set))
        })
        .collect();
    for o in out.iter_mut() {
        let gost = o.key_type.as_deref().is_some_and(|k| k.starts_with("GOST"));
        if gost && o.curve.is_none() && o.class != "cert" {
            o.curve = from_certs
                .iter()
                .find(|(id, _)| *id == o.id)
                .map(|(_, s)| s.clone());
        }
    }
    let rank = |c: &str| match c {
        "privkey" => 0,
        "pubkey" => 1,
        "cert" => 2,
        "secretkey" => 3,
        "data" => 4,
        _ => 5,
    };
    out.sort_by(|a, b| (&a.id, rank(&a.class), &a.label).cmp(&(&b.id, rank(&b.class), &b.label)));
    Ok(out)
}

/// The "TYPE" column: "RSA 2048", "EC P-256", "Ed25519", "AES 256", "X.509".
pub fn type_text(o: &ObjectInfo) -> String {
    let mut s = o.key_type.clone().unwrap_or_default();
    if o.class == "cert" {
        if let Some(k) = o.certificate.as_ref().and_then(|c| c.key.clone()) {
            s = format!("X.509 {k}");
        }
        return s;
    }
    if let Some(c) = &o.curve {
        s = format!("{s} {c}");
    } else if let Some(b) = o.bits {
        if !s.contains("GOST") && !s.starts_with("Ed") {
            s = format!("{s} {b}");
        }
    }
    s
}

/// The "DETAILS" column: flags for keys; subject and validity for certificates.
pub fn details_text(o: &ObjectInfo) -> String {
    if let Some(c) = &o.certificate {
        let mut s = format!(
            "subject {}; issuer {}; valid {} to {}",
            c.subject, c.issuer, c.not_before, c.not_after
        );
        match &c.warning {
            Some(w) => s.push_str(&format!(" ({w})")),
            None => s.push_str(&format!(" ({} days left)", c.days_left)),
        }
        return s;
    }
    let mut parts: Vec<String> = Vec::new();
    if !o.token {
        parts.push("session object".into());
    }
    if o.private {
        parts.push("private".into());
    }
    parts.extend(o.flags.iter().map(|f| f.to_string()));
    if let Some(a) = &o.application {
        parts.push(format!("application \"{a}\""));
    }
    parts.join(", ")
}

pub fn print_table(objects: &[ObjectInfo]) {
    let rows: Vec<[String; 5]> = objects
        .iter()
        .map(|o| {
            [
                o.class.clone(),
                o.label.clone(),
                o.id.clone(),
                type_text(o),
                details_text(o),
            ]
        })
        .collect();
    let header = ["CLASS", "LABEL", "ID", "TYPE", "DETAILS"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &ObjectsArgs) -> Result<()> {
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(sel)?;
    let session = ctx.open_session(slot, false)?;
    if a.login {
        let pin = ctx.user_pin_for(&info, &a.pin.source())?;
        ctx.login(&session, slot, UserType::User, pin.as_ref())?;
    }
    let objects = list(&session)?;
    if a.login {
        let _ = session.logout();
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&objects).unwrap_or_else(|_| "[]".into())
        );
        return Ok(());
    }
    let label = crate::cmd::trim_label(info.label());
    if objects.is_empty() {
        println!(
            "Token \"{label}\" (slot {}) has no {}objects.",
            slot.id(),
            if a.login { "" } else { "public " }
        );
    } else {
        print_table(&objects);
    }
    for o in &objects {
        if let Some(w) = o.certificate.as_ref().and_then(|c| c.warning.as_ref()) {
            eprintln!("warning: certificate \"{}\" (id {}) {w}", o.label, o.id);
        }
    }
    if !a.login && info.login_required() {
        println!("(public objects only; --login shows private ones too)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_column() {
        let o = ObjectInfo {
            class: "privkey".into(),
            key_type: Some("RSA".into()),
            bits: Some(2048),
            ..Default::default()
        };
        assert_eq!(type_text(&o), "RSA 2048");
        let o = ObjectInfo {
            class: "pubkey".into(),
            key_type: Some("EC".into()),
            curve: Some("P-256".into()),
            bits: Some(256),
            ..Default::default()
        };
        assert_eq!(type_text(&o), "EC P-256");
    }
}
