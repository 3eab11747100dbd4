//! `klyuch import`: keys and certificates from files into a token.
//!
//! Files are read by [`crate::input`] (PEM, DER, PKCS#8, PKCS#12); key and certificate
//! attributes come from `klyuch_crypto` (`pkcs8::private_key_attributes`,
//! `pkcs8::public_from_private`, `x509::certificate_attributes`, `x509::public_key_attributes`);
//! objects are created through PKCS#11 like any application would.

use crate::attrs::{HexId, intrinsic_id, parse_hex_id, template_to_cryptoki};
use crate::ctx::{Ctx, TokenSelector};
use crate::describe;
use crate::error::{CliError, Result};
use crate::input::{self, Format};
use crate::pin::{PassphraseArgs, UserPinArgs};
use clap::Args;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use token_api::Template;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The file: a certificate, private key, public key or PKCS#12 file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Label (CKA_LABEL) of the new objects [default: the PKCS#12 friendly name, else the
    /// certificate's CN, else the file name]
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// ID (CKA_ID, hex) of the new objects [default: SHA-1 of the public key, as OpenSC does]
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub id: Option<HexId>,
    /// The file format [default: detected]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

/// One object to create.
struct NewObject {
    /// "privkey", "pubkey", "cert" for messages.
    kind: &'static str,
    class: CK_OBJECT_CLASS,
    template: Template,
    /// Attributes the token may not know (PKCS#11 3.0 ones): dropped and retried on
    /// CKR_ATTRIBUTE_TYPE_INVALID.
    optional: &'static [CK_ATTRIBUTE_TYPE],
    label: String,
    id: Vec<u8>,
    summary: String,
    /// The label is a default (a certificate's CN): a key already on the token with the same
    /// ID lends its label instead.
    label_is_default: bool,
    /// A certificate whose ID is the default (its public key's SHA-1): a key already on the
    /// token with the same public key, whatever its ID, lends its ID instead.
    id_is_default: bool,
}

fn crypto_err(what: &str) -> impl Fn(token_api::Error) -> CliError + '_ {
    move |e| {
        let detail = e.detail();
        CliError::new(if detail.is_empty() {
            format!("{what} ({})", crate::error::ckr_name(e.rv()))
        } else {
            format!("{what}: {detail}")
        })
    }
}

/// Usage flags by key type, for a private and a public key: every usage is set, so the
/// token's defaults (SoftHSM: decrypt on an EC key) do not apply.
fn usage(kt: CK_KEY_TYPE, private: bool) -> Vec<(CK_ATTRIBUTE_TYPE, bool)> {
    let rsa = kt == CKK_RSA;
    let agree = matches!(kt, CKK_EC | CKK_EC_MONTGOMERY | CKK_GOSTR3410)
        || kt == describe::CKK_GOSTR3410_512;
    let sign = kt != CKK_EC_MONTGOMERY;
    if private {
        vec![
            (CKA_SIGN, sign),
            (CKA_DECRYPT, rsa),
            (CKA_UNWRAP, rsa),
            (CKA_DERIVE, agree),
        ]
    } else {
        vec![
            (CKA_VERIFY, sign),
            (CKA_ENCRYPT, rsa),
            (CKA_WRAP, rsa),
            (CKA_DERIVE, false),
        ]
    }
}

fn key_summary(public: &Template) -> String {
    let kt = public.get_ulong(CKA_KEY_TYPE).ok().flatten();
    match kt {
        Some(CKK_RSA) => format!(
            "RSA {}",
            describe::bit_len(public.get(CKA_MODULUS).unwrap_or_default())
        ),
        Some(CKK_EC) => format!(
            "EC {}",
            describe::ec_params_name(public.get(CKA_EC_PARAMS).unwrap_or_default())
        ),
        Some(CKK_EC_EDWARDS) | Some(CKK_EC_MONTGOMERY) => {
            describe::ec_params_name(public.get(CKA_EC_PARAMS).unwrap_or_default())
        }
        Some(CKK_GOSTR3410) | Some(describe::CKK_GOSTR3410_512) => {
            let name = describe::key_type_name(kt.unwrap_or_default());
            match public.get(CKA_GOSTR3410_PARAMS) {
                Some(p) => format!("{name} {}", describe::gost_params_name(p)),
                None => name,
            }
        }
        Some(other) => describe::key_type_name(other),
        None => "key".into(),
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "imported".into())
}

/// What the file holds, turned into PKCS#11 objects (nothing created yet).
fn plan(a: &ImportArgs, contents: input::Contents) -> Result<Vec<NewObject>> {
    if contents.keys.len() > 1 && a.id.is_some() {
        return Err(CliError::usage(format!(
            "the file has {} private keys; --id would give them all the same ID",
            contents.keys.len()
        )));
    }
    // Certificates: attributes and the ID of their public key.
    struct Cert {
        der: Vec<u8>,
        attrs: Template,
        key_id: Option<Vec<u8>>,
        name: Option<String>,
        local_key_id: Option<Vec<u8>>,
        used: bool,
    }
    let mut certs = Vec::new();
    for c in contents.certs {
        let attrs = klyuch_crypto::x509::certificate_attributes(&c.der)
            .map_err(crypto_err("cannot read the certificate"))?;
        let key_id = attrs
            .get(CKA_PUBLIC_KEY_INFO)
            .and_then(|spki| klyuch_crypto::x509::public_key_attributes(spki).ok())
            .and_then(|t| intrinsic_id(&t));
        certs.push(Cert {
            der: c.der,
            attrs,
            key_id,
            name: c.name,
            local_key_id: c.local_key_id,
            used: false,
        });
    }

    let mut objects = Vec::new();
    for k in &contents.keys {
        let mut private = klyuch_crypto::pkcs8::private_key_attributes(&k.pkcs8)
            .map_err(crypto_err("cannot read the private key"))?;
        let mut public = klyuch_crypto::pkcs8::public_from_private(&private)
            .map_err(crypto_err("cannot derive the public key"))?;
        let key_id = intrinsic_id(&public)
            .or_else(|| intrinsic_id(&private))
            .ok_or_else(|| CliError::new("cannot compute the key's ID; give one with --id"))?;
        // Its certificates: same public key, or the same PKCS#12 localKeyId.
        let matching: Vec<usize> = certs
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.key_id.as_ref() == Some(&key_id)
                    || (k.local_key_id.is_some() && c.local_key_id == k.local_key_id)
            })
            .map(|(i, _)| i)
            .collect();
        let label = a
            .label
            .clone()
            .or_else(|| k.name.clone())
            .or_else(|| matching.iter().find_map(|i| certs[*i].name.clone()))
            .or_else(|| {
                matching
                    .iter()
                    .find_map(|i| describe::cert_common_name(&certs[*i].der))
            })
            .unwrap_or_else(|| file_stem(&a.file));
        let id = a.id.as_ref().map(|i| i.0.clone()).unwrap_or(key_id);
        let subject = matching
            .first()
            .and_then(|i| certs[*i].attrs.get(CKA_SUBJECT).map(<[u8]>::to_vec));
        let summary = key_summary(&public);
        let kt = private
            .get_ulong(CKA_KEY_TYPE)
            .ok()
            .flatten()
            .unwrap_or(CK_UNAVAILABLE_INFORMATION);

        private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        private.set_bool(CKA_TOKEN, true);
        private.set_bool(CKA_PRIVATE, true);
        private.set_bool(CKA_SENSITIVE, true);
        private.set_bool(CKA_EXTRACTABLE, false);
        for (ty, v) in usage(kt, true) {
            private.set_bool(ty, v);
        }
        public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        public.set_bool(CKA_TOKEN, true);
        public.set_bool(CKA_PRIVATE, false);
        for (ty, v) in usage(kt, false) {
            public.set_bool(ty, v);
        }
        for t in [&mut private, &mut public] {
            t.set(CKA_LABEL, label.as_bytes().to_vec());
            t.set(CKA_ID, id.clone());
            if let Some(s) = &subject {
                t.set(CKA_SUBJECT, s.clone());
            }
        }
        objects.push(NewObject {
            kind: "privkey",
            class: CKO_PRIVATE_KEY,
            template: private,
            optional: &[CKA_PUBLIC_KEY_INFO, CKA_SUBJECT],
            label: label.clone(),
            id: id.clone(),
            summary: summary.clone(),
            label_is_default: false,
            id_is_default: false,
        });
        objects.push(NewObject {
            kind: "pubkey",
            class: CKO_PUBLIC_KEY,
            template: public,
            optional: &[CKA_PUBLIC_KEY_INFO, CKA_SUBJECT],
            label: label.clone(),
            id: id.clone(),
            summary,
            label_is_default: false,
            id_is_default: false,
        });
        for i in matching {
            certs[i].used = true;
            objects.push(cert_object(&certs[i].der, &certs[i].attrs, &label, &id)?);
        }
    }

    // Certificates without a key in this file (a lone certificate, or CA certificates).
    let lone: Vec<&Cert> = certs.iter().filter(|c| !c.used).collect();
    let no_keys = contents.keys.is_empty();
    if no_keys && lone.len() > 1 && a.id.is_some() {
        return Err(CliError::usage(format!(
            "the file has {} certificates and no key; --id would give them all the same ID",
            lone.len()
        )));
    }
    for c in lone {
        let given = (if no_keys { a.label.clone() } else { None }).or_else(|| c.name.clone());
        let label_is_default = given.is_none();
        let label = given
            .or_else(|| describe::cert_common_name(&c.der))
            .unwrap_or_else(|| file_stem(&a.file));
        let given_id = if no_keys {
            a.id.as_ref().map(|i| i.0.clone())
        } else {
            None
        };
        let id_is_default = given_id.is_none();
        let id = given_id.or_else(|| c.key_id.clone()).ok_or_else(|| {
            CliError::new("cannot compute the certificate's key ID; give one with --id")
        })?;
        let mut obj = cert_object(&c.der, &c.attrs, &label, &id)?;
        obj.label_is_default = label_is_default;
        obj.id_is_default = id_is_default;
        objects.push(obj);
    }

    // Lone public keys.
    for spki in &contents.public_keys {
        let mut public = klyuch_crypto::x509::public_key_attributes(spki)
            .map_err(crypto_err("cannot read the public key"))?;
        let key_id = intrinsic_id(&public);
        let id =
            a.id.as_ref()
                .map(|i| i.0.clone())
                .or(key_id)
                .ok_or_else(|| CliError::new("cannot compute the key's ID; give one with --id"))?;
        let label = a.label.clone().unwrap_or_else(|| file_stem(&a.file));
        let kt = public
            .get_ulong(CKA_KEY_TYPE)
            .ok()
            .flatten()
            .unwrap_or(CK_UNAVAILABLE_INFORMATION);
        let summary = key_summary(&public);
        public.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        public.set_bool(CKA_TOKEN, true);
        public.set_bool(CKA_PRIVATE, false);
        for (ty, v) in usage(kt, false) {
            public.set_bool(ty, v);
        }
        public.set(CKA_LABEL, label.as_bytes().to_vec());
        public.set(CKA_ID, id.clone());
        objects.push(NewObject {
            kind: "pubkey",
            class: CKO_PUBLIC_KEY,
            template: public,
            optional: &[CKA_PUBLIC_KEY_INFO],
            label,
            id,
            summary,
            label_is_default: false,
            id_is_default: false,
        });
    }
    Ok(objects)
}

fn cert_object(der: &[u8], attrs: &Template, label: &str, id: &[u8]) -> Result<NewObject> {
    let mut t = attrs.clone();
    t.set(CKA_CLASS, CKO_CERTIFICATE.to_ne_bytes().to_vec());
    t.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    t.set(CKA_VALUE, der.to_vec());
    t.set_bool(CKA_TOKEN, true);
    t.set_bool(CKA_PRIVATE, false);
    t.set(CKA_LABEL, label.as_bytes().to_vec());
    t.set(CKA_ID, id.to_vec());
    let summary = describe::cert_summary(der)
        .map(|c| format!("X.509, subject {}", c.subject))
        .unwrap_or_else(|| "X.509".into());
    Ok(NewObject {
        kind: "cert",
        class: CKO_CERTIFICATE,
        template: t,
        optional: &[
            CKA_PUBLIC_KEY_INFO,
            CKA_START_DATE,
            CKA_END_DATE,
            CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
            CKA_HASH_OF_ISSUER_PUBLIC_KEY,
        ],
        label: label.to_string(),
        id: id.to_vec(),
        summary,
        label_is_default: false,
        id_is_default: false,
    })
}

/// Create an object; a module that does not know an optional (newer) attribute gets the
/// template without it.
fn create(session: &Session, obj: &NewObject) -> Result<ObjectHandle> {
    let mut template = obj.template.clone();
    loop {
        let attrs = template_to_cryptoki(&template)?;
        match session.create_object(&attrs) {
            Ok(h) => return Ok(h),
            Err(e) => {
                let err = CliError::from(e);
                let droppable = obj
                    .optional
                    .iter()
                    .copied()
                    .find(|ty| template.contains(*ty));
                match droppable {
                    Some(ty) if err.is_rv(CKR_ATTRIBUTE_TYPE_INVALID) => {
                        template.remove(ty);
                    }
                    _ => return Err(err),
                }
            }
        }
    }
}

/// The label of a private or public key with this ID on the token.
fn existing_key_label(session: &Session, id: &[u8]) -> Result<Option<String>> {
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        let found = session.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?;
        if let Some(h) = found.first() {
            let attrs = session.get_attributes(*h, &[cryptoki::object::AttributeType::Label])?;
            for a in attrs {
                if let Attribute::Label(l) = a {
                    if !l.is_empty() {
                        return Ok(Some(String::from_utf8_lossy(&l).into_owned()));
                    }
                }
            }
        }
    }
    Ok(None)
}

/// (SHA-1 of the public key as [`intrinsic_id`] computes it, CKA_ID) of every key on the token
/// whose public key can be read: public key objects, and private keys with
/// `CKA_PUBLIC_KEY_INFO`.
fn token_key_ids(session: &Session) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use cryptoki::object::AttributeType as T;
    let mut out = Vec::new();
    for h in session.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])? {
        let Ok(attrs) = session.get_attributes(
            h,
            &[
                T::Id,
                T::KeyType,
                T::Modulus,
                T::EcPoint,
                T::Value,
                T::PublicKeyInfo,
            ],
        ) else {
            continue;
        };
        let mut t = Template::new();
        let mut id = None;
        let mut spki = None;
        for a in attrs {
            match a {
                Attribute::Id(v) => id = Some(v),
                Attribute::KeyType(k) => t.set_ulong(CKA_KEY_TYPE, CK_KEY_TYPE::from(k)),
                Attribute::Modulus(v) => t.set(CKA_MODULUS, v),
                Attribute::EcPoint(v) => t.set(CKA_EC_POINT, v),
                Attribute::Value(v) => t.set(CKA_VALUE, v),
                Attribute::PublicKeyInfo(v) if !v.is_empty() => spki = Some(v),
                _ => {}
            }
        }
        let from_spki = spki
            .and_then(|s| klyuch_crypto::x509::public_key_attributes(&s).ok())
            .and_then(|t| intrinsic_id(&t));
        if let (Some(id), Some(pk)) = (id, from_spki.or_else(|| intrinsic_id(&t))) {
            out.push((pk, id));
        }
    }
    for h in session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])? {
        let Ok(attrs) = session.get_attributes(h, &[T::Id, T::PublicKeyInfo]) else {
            continue;
        };
        let mut id = None;
        let mut spki = None;
        for a in attrs {
            match a {
                Attribute::Id(v) => id = Some(v),
                Attribute::PublicKeyInfo(v) if !v.is_empty() => spki = Some(v),
                _ => {}
            }
        }
        let pk = spki
            .and_then(|s| klyuch_crypto::x509::public_key_attributes(&s).ok())
            .and_then(|t| intrinsic_id(&t));
        if let (Some(id), Some(pk)) = (id, pk) {
            out.push((pk, id));
        }
    }
    Ok(out)
}

fn class_of(c: CK_OBJECT_CLASS) -> ObjectClass {
    match c {
        CKO_PRIVATE_KEY => ObjectClass::PRIVATE_KEY,
        CKO_PUBLIC_KEY => ObjectClass::PUBLIC_KEY,
        _ => ObjectClass::CERTIFICATE,
    }
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &ImportArgs) -> Result<()> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&a.file)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", a.file.display())))?,
    );
    let source = a.passphrase.source();
    let mut cached: Option<SecretString> = None;
    let mut passphrase = || -> Result<SecretString> {
        if let Some(p) = &cached {
            return Ok(p.clone());
        }
        let p = source.get()?;
        cached = Some(p.clone());
        Ok(p)
    };
    let contents =
        input::read(&bytes, a.format, &mut passphrase).map_err(|e| e.context(a.file.display()))?;
    for n in &contents.notes {
        eprintln!("note: {n}");
    }
    if contents.is_empty() {
        return Err(CliError::new(format!(
            "{}: nothing to import",
            a.file.display()
        )));
    }
    let kind = contents.kind;
    let objects = plan(a, contents).map_err(|e| e.context(a.file.display()))?;

    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(sel)?;
    let session = ctx.open_session(slot, true)?;
    let pin = ctx.user_pin_for(&info, &a.pin.source())?;
    ctx.login(&session, slot, UserType::User, pin.as_ref())?;

    let mut objects = objects;
    // A certificate for a key already on the token goes next to it: the key's ID, found by its
    // public key (keys made by `klyuch keygen`, pkcs11-tool or a vendor tool may have any ID).
    if objects.iter().any(|o| o.id_is_default) {
        let keys = token_key_ids(&session)?;
        for o in objects.iter_mut().filter(|o| o.id_is_default) {
            if let Some((_, key_id)) = keys.iter().find(|(pk, _)| *pk == o.id)
                && *key_id != o.id
            {
                o.template.set(CKA_ID, key_id.clone());
                o.id = key_id.clone();
            }
        }
    }
    // A certificate for a key already on the token takes the key's label.
    for o in objects.iter_mut().filter(|o| o.label_is_default) {
        if let Some(label) = existing_key_label(&session, &o.id)? {
            o.template.set(CKA_LABEL, label.as_bytes().to_vec());
            o.label = label;
        }
    }
    // Refuse to make a second object of a class with an ID that is already there.
    for o in &objects {
        let found = session.find_objects(&[
            Attribute::Class(class_of(o.class)),
            Attribute::Id(o.id.clone()),
        ])?;
        if !found.is_empty() {
            return Err(CliError::new(format!(
                "the token already has a {} with ID {}; delete it first (klyuch delete --id {} \
                 --class {}) or import with another --id",
                o.kind,
                hex::encode(&o.id),
                hex::encode(&o.id),
                o.kind
            )));
        }
    }

    let mut created: Vec<ObjectHandle> = Vec::new();
    for o in &objects {
        match create(&session, o) {
            Ok(h) => created.push(h),
            Err(e) => {
                // All or nothing: remove what this run created.
                for h in created.iter().rev() {
                    let _ = session.destroy_object(*h);
                }
                return Err(e.context(format!(
                    "creating the {} \"{}\" ({}); nothing was imported",
                    o.kind, o.label, o.summary
                )));
            }
        }
    }
    let _ = session.logout();
    let label = crate::cmd::trim_label(info.label());
    for o in &objects {
        println!(
            "Imported {} \"{}\" id {} ({})",
            o.kind,
            o.label,
            hex::encode(&o.id),
            o.summary
        );
    }
    println!(
        "{} object(s) from {} ({kind}) into token \"{label}\" (slot {}).",
        objects.len(),
        a.file.display(),
        slot.id()
    );
    Ok(())
}
