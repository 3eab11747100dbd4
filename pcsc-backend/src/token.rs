//! A card in a reader as a PKCS#11 [`Token`]: cached objects, login state, PIN flags, and the
//! operations that prepare input on the host and run the card's raw primitive.
//!
//! Every card access is one PC/SC transaction ([`CardToken::with_card`]): begin, (reselect after
//! a reset by another program), the profile's commands, end. A transaction never spans two
//! PKCS#11 calls. Lock order inside a token: connection → state (never the other way round).

use crate::apdu::{CardError, CardResult, Sw};
use crate::host::{self, KeyKind};
use crate::pinpad::PinPad;
use crate::profile::{
    self, AdminAuth, CardIdent, CardKey, CardProfile, Contents, KeySpec, PinRole, PinStatus,
};
use crate::transport::{Channel, Connection};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use token_api::ck::*;
use token_api::ops::{CipherOp, ContextLogin, DigestOp, SignOp, VerifyOp};
use token_api::{
    AttrRead, Error, MechInfo, MechParam, Mechanism, ObjectId, Pin, Result, SessionCtx, Template,
    Token, TokenInfo, UserType,
};
use zeroize::Zeroizing;

/// Card contents by ATR || unique card bytes, shared by the tokens of a source.
pub type ObjectCache = Arc<Mutex<HashMap<Vec<u8>, Contents>>>;

/// Options a token gets from the source (configuration and shared counters).
#[derive(Clone, Default)]
pub struct TokenOptions {
    /// Use the reader's PIN pad for `C_Login` with a NULL PIN (`[pcsc] pinpad`).
    pub pinpad: bool,
    /// Counts every APDU sent (shared by the source's tokens; the benchmark reads it).
    pub counter: Arc<AtomicU64>,
    /// Object cache shared across insertions: key = ATR || card unique bytes.
    pub cache: Option<ObjectCache>,
    /// Administrative secrets (PIV management key) from the environment.
    pub admin: AdminAuth,
}

impl TokenOptions {
    /// Options with the PIV management key from `KLYUCH_PIV_MGMT_KEY` (hex), if set.
    pub fn from_env(pinpad: bool) -> TokenOptions {
        let management_key = std::env::var("KLYUCH_PIV_MGMT_KEY")
            .ok()
            .and_then(|h| crate::apdu::parse_hex(&h))
            .map(Zeroizing::new);
        TokenOptions {
            pinpad,
            admin: AdminAuth { management_key },
            ..Default::default()
        }
    }
}

/// One PKCS#11 object of the token.
struct Obj {
    id: ObjectId,
    class: CK_OBJECT_CLASS,
    /// `CKA_ID` (links key, public key and certificate).
    ckaid: Vec<u8>,
    attrs: Template,
    /// Hidden until the user logs in.
    private: bool,
    /// Owning session for session objects (derived keys); `None` = token object.
    session: Option<CK_SESSION_HANDLE>,
}

struct State {
    login: Option<UserType>,
    /// PIV: the PUK given at SO login, used by `C_InitPIN` (wiped on drop / logout).
    so_secret: Option<Pin>,
    user_pin: PinStatus,
    user_failed: bool,
    so_pin: PinStatus,
    so_failed: bool,
    contents: Contents,
    objects: Vec<Obj>,
    /// Stable object ids: (class, CKA_ID) → id.
    ids: HashMap<(CK_OBJECT_CLASS, Vec<u8>), ObjectId>,
    next_id: ObjectId,
}

struct Inner {
    reader: String,
    profile: &'static dyn CardProfile,
    ident: CardIdent,
    atr: Vec<u8>,
    conn: Mutex<Box<dyn Connection>>,
    st: Mutex<State>,
    alive: AtomicBool,
    /// Incremented whenever the login is lost (logout, reset): operations started under an
    /// older login fail with `CKR_USER_NOT_LOGGED_IN` instead of running unauthenticated.
    login_gen: AtomicU64,
    counter: Arc<AtomicU64>,
    own_counter: AtomicU64,
    pinpad: PinPad,
    opts: TokenOptions,
}

/// A card token. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct CardToken {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn role(u: UserType) -> Result<PinRole> {
    match u {
        UserType::User => Ok(PinRole::User),
        UserType::So => Ok(PinRole::So),
        UserType::ContextSpecific => Err(Error::new(CKR_USER_TYPE_INVALID)),
    }
}

impl CardToken {
    /// Connect the token to a card: choose the profile, identify the card, read its objects (or
    /// take them from the cache) and the PIN state, all in one transaction.
    pub fn open(conn: Box<dyn Connection>, reader: &str, opts: TokenOptions) -> Result<CardToken> {
        let atr = conn.atr();
        let mut conn = conn;
        let own = AtomicU64::new(0);
        let mut attempt = 0;
        let (profile, ident, contents, user_pin, pinpad) = loop {
            attempt += 1;
            let r = (|| -> CardResult<_> {
                let (mut tx, _reset) = conn.begin()?;
                let mut ch = Channel::new(tx.as_mut(), &own);
                let profile = profile::choose(&atr, &mut ch)?;
                let ident = profile.identify(&mut ch)?;
                let key = [atr.as_slice(), &ident.unique].concat();
                let cached = match (&opts.cache, ident.unique.is_empty()) {
                    (Some(c), false) => lock(c).get(&key).cloned(),
                    _ => None,
                };
                let contents = match cached {
                    Some(c) => {
                        log::debug!("{reader}: objects from the cache");
                        c
                    }
                    None => {
                        let c = profile.read_contents(&mut ch)?;
                        if let (Some(cache), false) = (&opts.cache, ident.unique.is_empty()) {
                            lock(cache).insert(key, c.clone());
                        }
                        c
                    }
                };
                let user_pin = profile
                    .pin_status(&mut ch, PinRole::User)
                    .unwrap_or(None)
                    .unwrap_or_default();
                let pinpad = if opts.pinpad {
                    PinPad::query(&mut ch)
                } else {
                    PinPad::default()
                };
                Ok((profile, ident, contents, user_pin, pinpad))
            })();
            match r {
                Ok(x) => break x,
                Err(CardError::Reset) if attempt < 3 => conn.recover()?,
                Err(e) => return Err(e.into()),
            }
        };
        let n = own.load(Ordering::Relaxed);
        opts.counter.fetch_add(n, Ordering::Relaxed);
        log::info!(
            "{reader}: {} card \"{}\" serial {} ({} keys, {} certificates, {n} APDUs)",
            profile.name(),
            ident.label,
            ident.serial,
            contents.keys.len(),
            contents.certs.len()
        );
        let mut st = State {
            login: None,
            so_secret: None,
            user_pin,
            user_failed: false,
            so_pin: PinStatus::default(),
            so_failed: false,
            contents,
            objects: Vec::new(),
            ids: HashMap::new(),
            next_id: 1,
        };
        rebuild(&mut st);
        Ok(CardToken {
            inner: Arc::new(Inner {
                reader: reader.to_owned(),
                profile,
                ident,
                atr,
                conn: Mutex::new(conn),
                st: Mutex::new(st),
                alive: AtomicBool::new(true),
                login_gen: AtomicU64::new(0),
                counter: opts.counter.clone(),
                own_counter: AtomicU64::new(n),
                pinpad,
                opts,
            }),
        })
    }

    /// APDUs this token has sent (including opening it).
    pub fn apdu_count(&self) -> u64 {
        self.inner.own_counter.load(Ordering::Relaxed)
    }

    /// The profile that drives the card ("piv", "gost", "unsupported").
    pub fn profile_name(&self) -> &'static str {
        self.inner.profile.name()
    }

    /// The card's ATR.
    pub fn atr(&self) -> &[u8] {
        &self.inner.atr
    }

    /// The source saw the card go away.
    pub fn mark_removed(&self) {
        self.inner.alive.store(false, Ordering::SeqCst);
    }

    /// Does the reader offer PIN entry on its pad (and may we use it)?
    pub fn has_pinpad(&self) -> bool {
        self.inner.pinpad.has_verify() && self.inner.profile.pin_format(PinRole::User).is_some()
    }
}

impl Inner {
    fn drop_login(&self, why: &str) {
        let mut st = lock(&self.st);
        if st.login.is_some() {
            log::info!("{}: login dropped ({why})", self.reader);
        }
        st.login = None;
        st.so_secret = None;
        self.login_gen.fetch_add(1, Ordering::SeqCst);
    }

    fn fail(&self, e: CardError) -> Error {
        match &e {
            CardError::Removed => {
                self.alive.store(false, Ordering::SeqCst);
            }
            CardError::Sw(Sw::SecurityStatusNotSatisfied) => {
                self.drop_login("the card says the PIN is not verified");
            }
            _ => {}
        }
        log::debug!("{}: {e}", self.reader);
        e.into()
    }

    /// Run `f` in one PC/SC transaction. After a reset by another program the application is
    /// selected again and the login dropped; calls that need the login then fail with
    /// `CKR_USER_NOT_LOGGED_IN` (never run unauthenticated), the others are retried once.
    fn with_card<R>(
        &self,
        needs_login: bool,
        mut f: impl FnMut(&mut Channel<'_>, &'static dyn CardProfile) -> CardResult<R>,
    ) -> Result<R> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(Error::new(CKR_DEVICE_REMOVED));
        }
        let mut conn = lock(&self.conn);
        for _ in 0..2 {
            let before = self.own_counter.load(Ordering::Relaxed);
            let counter = AtomicU64::new(0);
            let result = {
                let (mut tx, reset) = match conn.begin() {
                    Ok(x) => x,
                    Err(e) => return Err(self.fail(e)),
                };
                let mut ch = Channel::new(tx.as_mut(), &counter);
                let mut r = Ok(None);
                if reset {
                    self.drop_login("card reset by another program");
                    r = self.profile.select(&mut ch).map(|_| None);
                    if r.is_ok() && needs_login {
                        r = Err(CardError::Reset);
                    }
                }
                if matches!(r, Ok(None)) {
                    r = f(&mut ch, self.profile).map(Some);
                }
                r
            };
            let n = counter.load(Ordering::Relaxed);
            self.own_counter.store(before + n, Ordering::Relaxed);
            self.counter.fetch_add(n, Ordering::Relaxed);
            match result {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => unreachable!("with_card: no result"),
                Err(CardError::Reset) => {
                    self.drop_login("card reset by another program");
                    if let Err(e) = conn.recover() {
                        return Err(self.fail(e));
                    }
                    if needs_login {
                        // Reselect now so that the next call finds the application.
                        if let Ok((mut tx, _)) = conn.begin() {
                            let c = AtomicU64::new(0);
                            let mut ch = Channel::new(tx.as_mut(), &c);
                            let _ = self.profile.select(&mut ch);
                            self.counter
                                .fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
                            self.own_counter
                                .fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
                        }
                        return Err(Error::with(
                            CKR_USER_NOT_LOGGED_IN,
                            "the card was reset by another program: log in again",
                        ));
                    }
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Err(Error::with(CKR_DEVICE_ERROR, "card keeps being reset"))
    }

    fn note_pin(&self, role: PinRole, r: &CardResult<()>) {
        let mut guard = lock(&self.st);
        let st = &mut *guard;
        let (status, failed) = match role {
            PinRole::User => (&mut st.user_pin, &mut st.user_failed),
            PinRole::So => (&mut st.so_pin, &mut st.so_failed),
        };
        // The counter's maximum: as the card told it, else as the profile knows it.
        let max = status.max_tries.or(self.profile.max_tries(role));
        match r {
            Ok(()) => {
                *status = PinStatus {
                    verified: true,
                    tries_left: max,
                    blocked: false,
                    max_tries: status.max_tries,
                };
                *failed = false;
            }
            Err(CardError::Sw(sw)) => {
                if let Ok(s) = PinStatus::from_sw(*sw) {
                    *status = PinStatus {
                        max_tries: status.max_tries,
                        ..s
                    };
                    *failed = true;
                }
            }
            Err(_) => {}
        }
    }

    fn logged_in_user(&self) -> bool {
        lock(&self.st).login == Some(UserType::User)
    }
}

/// Build the PKCS#11 objects from the card contents (keeping ids of unchanged objects).
fn rebuild(st: &mut State) {
    let mut objs = Vec::new();
    let take_id = |st_ids: &mut HashMap<_, ObjectId>, next: &mut ObjectId, class, ckaid: &[u8]| {
        *st_ids.entry((class, ckaid.to_vec())).or_insert_with(|| {
            let i = *next;
            *next += 1;
            i
        })
    };
    let contents = st.contents.clone();
    // certificate attributes by CKA_ID (their subject and SPKI also go on the keys)
    let mut cert_attrs: Vec<(Vec<u8>, Template)> = Vec::new();
    for c in &contents.certs {
        let mut a = match host::certificate_attributes(&c.der) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("certificate {:?}: {e}", c.label);
                continue;
            }
        };
        a.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
        common(&mut a, &c.label, &c.id, false);
        cert_attrs.push((c.id.clone(), a.clone()));
        let id = take_id(&mut st.ids, &mut st.next_id, CKO_CERTIFICATE, &c.id);
        objs.push(Obj {
            id,
            class: CKO_CERTIFICATE,
            ckaid: c.id.clone(),
            attrs: a,
            private: false,
            session: None,
        });
    }
    for k in &contents.keys {
        let cert = cert_attrs.iter().find(|c| c.0 == k.id).map(|c| &c.1);
        let subject = cert
            .and_then(|c| c.get(CKA_SUBJECT))
            .unwrap_or_default()
            .to_vec();
        // CKA_PUBLIC_KEY_INFO: as the card gave it, else the certificate's SPKI, else encoded
        // from the key itself (generated keys; GOST keys once klyuch-crypto has them).
        let mut public = k.public.clone();
        if public.get(CKA_PUBLIC_KEY_INFO).is_none_or(<[u8]>::is_empty) {
            let spki = match cert.and_then(|c| c.get(CKA_PUBLIC_KEY_INFO)) {
                Some(s) => s.to_vec(),
                None => host::public_key_info(&public).unwrap_or_else(|e| {
                    log::debug!("key {:02X?}: no CKA_PUBLIC_KEY_INFO ({e})", k.id);
                    Vec::new()
                }),
            };
            public.set(CKA_PUBLIC_KEY_INFO, spki);
        }
        let k = &CardKey {
            public,
            ..k.clone()
        };
        let keygen = match k.kind {
            KeyKind::Rsa { .. } => CKM_RSA_PKCS_KEY_PAIR_GEN,
            KeyKind::EcP256 | KeyKind::EcP384 => CKM_EC_KEY_PAIR_GEN,
            KeyKind::Gost256 => CKM_GOSTR3410_KEY_PAIR_GEN,
            KeyKind::Gost512 => CKM_GOSTR3410_512_KEY_PAIR_GEN,
        };
        // public key
        let mut p = k.public.clone();
        p.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        common(&mut p, &k.pub_label, &k.id, false);
        p.set(CKA_SUBJECT, subject.clone());
        p.set_bool(CKA_VERIFY, k.sign);
        p.set_bool(CKA_ENCRYPT, k.decrypt);
        p.set_bool(CKA_WRAP, false);
        p.set_bool(CKA_VERIFY_RECOVER, false);
        p.set_bool(CKA_DERIVE, k.derive);
        p.set_bool(CKA_TRUSTED, false);
        key_common(&mut p, k.local, keygen);
        let id = take_id(&mut st.ids, &mut st.next_id, CKO_PUBLIC_KEY, &k.id);
        objs.push(Obj {
            id,
            class: CKO_PUBLIC_KEY,
            ckaid: k.id.clone(),
            attrs: p,
            private: false,
            session: None,
        });
        // private key: the public components it shares, never a secret
        let mut s = Template::new();
        s.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        s.set_ulong(CKA_KEY_TYPE, k.kind.key_type());
        common(&mut s, &k.label, &k.id, k.login_required);
        for t in [
            CKA_MODULUS,
            CKA_PUBLIC_EXPONENT,
            CKA_EC_PARAMS,
            CKA_EC_POINT,
            CKA_GOSTR3410_PARAMS,
            CKA_GOSTR3411_PARAMS,
            CKA_PUBLIC_KEY_INFO,
        ] {
            if let Some(v) = k.public.get(t) {
                s.set(t, v.to_vec());
            }
        }
        s.set(CKA_SUBJECT, subject);
        s.set_bool(CKA_SIGN, k.sign);
        s.set_bool(CKA_DECRYPT, k.decrypt);
        s.set_bool(CKA_DERIVE, k.derive);
        s.set_bool(CKA_UNWRAP, false);
        s.set_bool(CKA_SIGN_RECOVER, false);
        s.set_bool(CKA_SENSITIVE, true);
        s.set_bool(CKA_EXTRACTABLE, false);
        s.set_bool(CKA_ALWAYS_SENSITIVE, true);
        s.set_bool(CKA_NEVER_EXTRACTABLE, true);
        s.set_bool(CKA_WRAP_WITH_TRUSTED, false);
        s.set_bool(CKA_ALWAYS_AUTHENTICATE, k.always_authenticate);
        key_common(&mut s, k.local, keygen);
        let id = take_id(&mut st.ids, &mut st.next_id, CKO_PRIVATE_KEY, &k.id);
        objs.push(Obj {
            id,
            class: CKO_PRIVATE_KEY,
            ckaid: k.id.clone(),
            attrs: s,
            private: k.login_required,
            session: None,
        });
    }
    // keep session objects
    objs.extend(st.objects.drain(..).filter(|o| o.session.is_some()));
    st.objects = objs;
}

fn common(a: &mut Template, label: &str, id: &[u8], private: bool) {
    a.set_bool(CKA_TOKEN, true);
    a.set_bool(CKA_PRIVATE, private);
    a.set_bool(CKA_MODIFIABLE, false);
    a.set_bool(CKA_COPYABLE, false);
    a.set_bool(CKA_DESTROYABLE, false);
    a.set(CKA_LABEL, label.as_bytes().to_vec());
    a.set(CKA_ID, id.to_vec());
}

fn key_common(a: &mut Template, local: bool, keygen: CK_MECHANISM_TYPE) {
    a.set(CKA_START_DATE, Vec::new());
    a.set(CKA_END_DATE, Vec::new());
    a.set_bool(CKA_LOCAL, local);
    a.set_ulong(
        CKA_KEY_GEN_MECHANISM,
        if local {
            keygen
        } else {
            CK_UNAVAILABLE_INFORMATION
        },
    );
}

/// Attributes that exist on private/secret keys but are never revealed.
fn is_secret_attr(class: CK_OBJECT_CLASS, ty: CK_ATTRIBUTE_TYPE) -> bool {
    match class {
        CKO_PRIVATE_KEY => matches!(
            ty,
            CKA_PRIVATE_EXPONENT
                | CKA_PRIME_1
                | CKA_PRIME_2
                | CKA_EXPONENT_1
                | CKA_EXPONENT_2
                | CKA_COEFFICIENT
                | CKA_VALUE
        ),
        _ => false,
    }
}

// ------------------------------------------------------------------ mechanisms

const RSA_SIGN: &[CK_MECHANISM_TYPE] = &[
    CKM_RSA_PKCS,
    CKM_RSA_X_509,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
];
const EC_SIGN: &[CK_MECHANISM_TYPE] = &[
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
];
const GOST_SIGN: &[CK_MECHANISM_TYPE] = &[
    CKM_GOSTR3410,
    CKM_GOSTR3410_512,
    CKM_GOSTR3410_WITH_GOSTR3411_12_256,
    CKM_GOSTR3410_WITH_GOSTR3411_12_512,
];

/// How the card's input is encoded from the (hashed) data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// EMSA-PKCS1-v1_5: a DigestInfo of the host's hash, or the caller's DigestInfo.
    RsaPkcs,
    /// Raw RSA (`CKM_RSA_X_509`): the caller's block, left-padded with zeros.
    RsaX509,
    /// EMSA-PSS with the mechanism parameter's hash, MGF and salt length.
    RsaPss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt: usize,
    },
    /// ECDSA: the hash fitted to the field size.
    Ecdsa,
    /// GOST R 34.10-2012: the 32/64-byte digest as the hash function outputs it.
    Gost,
}

/// How a sign mechanism prepares the card's input: an optional host-side hash (the digest
/// mechanism of a hash-and-sign mechanism) and the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Prep {
    hash: Option<CK_MECHANISM_TYPE>,
    enc: Encoding,
}

fn prep_for(m: &Mechanism, kind: KeyKind) -> Result<Prep> {
    let inconsistent = || Error::new(CKR_KEY_TYPE_INCONSISTENT);
    if !(RSA_SIGN.contains(&m.ty) || EC_SIGN.contains(&m.ty) || GOST_SIGN.contains(&m.ty)) {
        return Err(Error::mechanism_invalid());
    }
    let (hash, raw) = match host::hash_then_sign(m.ty) {
        Some((h, r)) => (Some(h), r),
        None => (None, m.ty),
    };
    let is_rsa = matches!(kind, KeyKind::Rsa { .. });
    let enc = match raw {
        CKM_RSA_PKCS if is_rsa => Encoding::RsaPkcs,
        CKM_RSA_X_509 if is_rsa => Encoding::RsaX509,
        CKM_RSA_PKCS_PSS if is_rsa => {
            let MechParam::RsaPss {
                hash: pss_hash,
                mgf,
                salt_len,
            } = &m.param
            else {
                return Err(Error::new(CKR_MECHANISM_PARAM_INVALID));
            };
            // PKCS#11 3.0 mechanisms §2.1.14: the parameter's hash is the mechanism's hash.
            if hash.is_some_and(|h| h != *pss_hash) || host::digest_len(*pss_hash).is_none() {
                return Err(Error::new(CKR_MECHANISM_PARAM_INVALID));
            }
            Encoding::RsaPss {
                hash: *pss_hash,
                mgf: *mgf,
                salt: usize::try_from(*salt_len)
                    .map_err(|_| Error::new(CKR_MECHANISM_PARAM_INVALID))?,
            }
        }
        CKM_ECDSA if matches!(kind, KeyKind::EcP256 | KeyKind::EcP384) => Encoding::Ecdsa,
        CKM_GOSTR3410 if kind == KeyKind::Gost256 => Encoding::Gost,
        CKM_GOSTR3410_512 if kind == KeyKind::Gost512 => Encoding::Gost,
        _ => return Err(inconsistent()),
    };
    Ok(Prep { hash, enc })
}

/// The card's input for one signature (host-side encodings of `klyuch-crypto`).
fn prepare(prep: Prep, kind: KeyKind, data: &[u8]) -> Result<Vec<u8>> {
    use klyuch_crypto::padding;
    let k = kind.sig_len();
    match prep.enc {
        Encoding::RsaPkcs => match prep.hash {
            Some(h) => padding::pkcs1_v15_sign_pad(&padding::digest_info(h, data)?, k),
            None => padding::pkcs1_v15_sign_pad(data, k),
        },
        Encoding::RsaX509 => {
            if data.len() > k {
                return Err(Error::new(CKR_DATA_LEN_RANGE));
            }
            let mut b = vec![0u8; k - data.len()];
            b.extend_from_slice(data);
            Ok(b)
        }
        Encoding::RsaPss { hash, mgf, salt } => {
            padding::pss_encode(hash, mgf, salt, data, kind.bits())
        }
        Encoding::Ecdsa => {
            let n = k / 2;
            if data.is_empty() {
                return Err(Error::new(CKR_DATA_LEN_RANGE));
            }
            // ECDSA uses the leftmost bits of the hash (SEC 1 §4.1.3 step 5); shorter input is
            // the same integer with leading zeros.
            let mut b = vec![0u8; n.saturating_sub(data.len())];
            b.extend_from_slice(&data[..data.len().min(n)]);
            Ok(b)
        }
        Encoding::Gost => {
            if data.len() != k / 2 {
                return Err(Error::with(
                    CKR_DATA_LEN_RANGE,
                    "GOST R 34.10 signs a 32/64-byte digest",
                ));
            }
            Ok(data.to_vec())
        }
    }
}

/// How the operation authenticates the always-authenticate key at the card operation.
#[derive(Clone)]
enum CtxAuth {
    /// The PIN, checked on the card at `C_Login(CKU_CONTEXT_SPECIFIC)` and sent again right
    /// before the operation, in the same transaction.
    Pin(Pin),
    /// The reader's PIN pad, asked once, right before the operation (asking at login and again
    /// at the operation would make the user type the PIN twice).
    Pad,
}

struct CardSignOp {
    inner: Arc<Inner>,
    key: CardKey,
    prep: Prep,
    hasher: Option<Box<dyn DigestOp>>,
    data: Zeroizing<Vec<u8>>,
    lgen: u64,
    ctx: Option<CtxAuth>,
}

fn check_login(inner: &Inner, key: &CardKey, lgen: u64) -> Result<()> {
    if key.login_required
        && (!inner.logged_in_user() || inner.login_gen.load(Ordering::SeqCst) != lgen)
    {
        return Err(Error::with(
            CKR_USER_NOT_LOGGED_IN,
            "the card's login was lost (logout or reset)",
        ));
    }
    Ok(())
}

fn context_verify(
    ch: &mut Channel<'_>,
    p: &'static dyn CardProfile,
    ctx: &Option<CtxAuth>,
    pad: &PinPad,
) -> CardResult<()> {
    match ctx {
        Some(CtxAuth::Pin(pin)) => p.verify_pin(ch, PinRole::User, pin),
        Some(CtxAuth::Pad) => p.verify_pin_pad(ch, PinRole::User, pad),
        None => Ok(()),
    }
}

/// `C_Login(CKU_CONTEXT_SPECIFIC)` for an operation on `key`: a PIN is verified on the card at
/// once (a wrong one is `CKR_PIN_INCORRECT` now, with the card's retry counter in the token
/// flags), and kept to be verified again right before the operation (PIV's "PIN always"
/// policy: the card accepts one operation per VERIFY). A PIN pad is used at the operation only.
fn context_login(inner: &Inner, key: &CardKey, lgen: u64, pin: Option<&Pin>) -> Result<CtxAuth> {
    if !key.always_authenticate {
        return Err(Error::with(
            CKR_OPERATION_NOT_INITIALIZED,
            "this key needs no context login",
        ));
    }
    check_login(inner, key, lgen)?;
    let Some(pin) = pin else {
        if inner.pinpad.has_verify() && inner.profile.pin_format(PinRole::User).is_some() {
            return Ok(CtxAuth::Pad);
        }
        return Err(Error::args("NULL PIN without a PIN pad"));
    };
    let mut pin_result = None;
    let r = inner.with_card(key.login_required, |ch, p| {
        let v = p.verify_pin(ch, PinRole::User, pin);
        pin_result = Some(v.clone());
        v
    });
    if let Some(pr) = &pin_result {
        inner.note_pin(PinRole::User, pr);
    }
    r?;
    Ok(CtxAuth::Pin(pin.clone()))
}

impl ContextLogin for CardSignOp {
    fn needs_context_login(&self) -> bool {
        self.key.always_authenticate && self.ctx.is_none()
    }
    fn context_login(&mut self, pin: Option<&Pin>) -> Result<()> {
        self.ctx = Some(context_login(&self.inner, &self.key, self.lgen, pin)?);
        Ok(())
    }
}

impl SignOp for CardSignOp {
    fn signature_len(&self) -> usize {
        self.key.kind.sig_len()
    }
    fn multipart(&self) -> bool {
        self.prep.hash.is_some()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.hasher {
            Some(h) => h.update(data)?,
            None => self.data.extend_from_slice(data),
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let input = match self.hasher.take() {
            Some(mut h) => Zeroizing::new(h.finish()?),
            None => std::mem::take(&mut self.data),
        };
        let block = Zeroizing::new(prepare(self.prep, self.key.kind, &input)?);
        check_login(&self.inner, &self.key, self.lgen)?;
        if self.key.always_authenticate && self.ctx.is_none() {
            return Err(Error::with(
                CKR_USER_NOT_LOGGED_IN,
                "this key needs C_Login(CKU_CONTEXT_SPECIFIC) first",
            ));
        }
        let ctx = self.ctx.take();
        let key = &self.key;
        let pad = self.inner.pinpad;
        let mut pin_result = None;
        // VERIFY (for an always-authenticate key) and the signature in one transaction, so that
        // no other program can use the card's one-operation PIN state in between.
        let r = self.inner.with_card(key.login_required, |ch, p| {
            let v = context_verify(ch, p, &ctx, &pad);
            if ctx.is_some() {
                pin_result = Some(v.clone());
            }
            v?;
            p.sign(ch, key, &block)
        });
        if let Some(pr) = pin_result {
            self.inner.note_pin(PinRole::User, &pr);
        }
        r
    }
}

/// How a decryption mechanism decodes the card's raw RSA result.
#[derive(Clone, Debug)]
enum Unpad {
    Raw,
    Pkcs1,
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label: Vec<u8>,
    },
}

struct CardDecryptOp {
    inner: Arc<Inner>,
    key: CardKey,
    unpad: Unpad,
    data: Zeroizing<Vec<u8>>,
    lgen: u64,
    ctx: Option<CtxAuth>,
}

impl ContextLogin for CardDecryptOp {
    fn needs_context_login(&self) -> bool {
        self.key.always_authenticate && self.ctx.is_none()
    }
    fn context_login(&mut self, pin: Option<&Pin>) -> Result<()> {
        self.ctx = Some(context_login(&self.inner, &self.key, self.lgen, pin)?);
        Ok(())
    }
}

impl CipherOp for CardDecryptOp {
    fn multipart(&self) -> bool {
        false
    }
    fn output_len(&self, _input_len: usize) -> usize {
        self.key.kind.sig_len()
    }
    fn final_len(&self) -> usize {
        self.key.kind.sig_len()
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.data.extend_from_slice(input);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        use klyuch_crypto::padding;
        let k = self.key.kind.sig_len();
        if self.data.len() != k {
            return Err(Error::new(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        check_login(&self.inner, &self.key, self.lgen)?;
        let data = std::mem::take(&mut self.data);
        let data: &[u8] = &data;
        let ctx = self.ctx.take();
        let key = &self.key;
        let pad = self.inner.pinpad;
        let out = self.inner.with_card(key.login_required, |ch, p| {
            context_verify(ch, p, &ctx, &pad)?;
            p.decrypt(ch, key, data)
        })?;
        let mut block = Zeroizing::new(vec![0u8; k.saturating_sub(out.len())]);
        block.extend_from_slice(&out);
        Ok(match &self.unpad {
            Unpad::Raw => block.to_vec(),
            Unpad::Pkcs1 => padding::pkcs1_v15_decrypt_unpad(&block)?.to_vec(),
            Unpad::Oaep { hash, mgf, label } => {
                padding::oaep_decode(*hash, *mgf, label, &block)?.to_vec()
            }
        })
    }
}

fn mech_info(ty: CK_MECHANISM_TYPE, caps: &profile::Caps) -> Option<MechInfo> {
    let ec_flags = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    // Verification and encryption with a card's public key run on the host (klyuch-crypto):
    // offered exactly when klyuch-crypto has the mechanism (GOST: once it lands there).
    let host = host::public_op_flags(ty);
    if caps.rsa && RSA_SIGN.contains(&ty) {
        let mut f = CKF_HW | CKF_SIGN | (host & CKF_VERIFY);
        if caps.decrypt && matches!(ty, CKM_RSA_PKCS | CKM_RSA_X_509) {
            f |= CKF_DECRYPT | (host & CKF_ENCRYPT);
        }
        return Some(MechInfo::new(1024, 2048, f));
    }
    if caps.ec && EC_SIGN.contains(&ty) {
        return Some(MechInfo::new(
            256,
            384,
            CKF_HW | CKF_SIGN | (host & CKF_VERIFY) | ec_flags,
        ));
    }
    if caps.gost && GOST_SIGN.contains(&ty) {
        let bits = if matches!(ty, CKM_GOSTR3410_512 | CKM_GOSTR3410_WITH_GOSTR3411_12_512) {
            512
        } else {
            256
        };
        return Some(MechInfo::new(
            bits,
            bits,
            CKF_HW | CKF_SIGN | (host & CKF_VERIFY),
        ));
    }
    match ty {
        CKM_RSA_PKCS_OAEP if caps.rsa && caps.decrypt => Some(MechInfo::new(
            1024,
            2048,
            CKF_HW | CKF_DECRYPT | (host & CKF_ENCRYPT),
        )),
        CKM_ECDH1_DERIVE if caps.ec && caps.derive => {
            Some(MechInfo::new(256, 384, CKF_HW | CKF_DERIVE | ec_flags))
        }
        CKM_RSA_PKCS_KEY_PAIR_GEN if caps.rsa && caps.keygen => {
            Some(MechInfo::new(2048, 2048, CKF_HW | CKF_GENERATE_KEY_PAIR))
        }
        CKM_EC_KEY_PAIR_GEN if caps.ec && caps.keygen => Some(MechInfo::new(
            256,
            384,
            CKF_HW | CKF_GENERATE_KEY_PAIR | ec_flags,
        )),
        CKM_GOSTR3410_KEY_PAIR_GEN if caps.gost && caps.keygen => {
            Some(MechInfo::new(256, 256, CKF_HW | CKF_GENERATE_KEY_PAIR))
        }
        CKM_GOSTR3410_512_KEY_PAIR_GEN if caps.gost && caps.keygen => {
            Some(MechInfo::new(512, 512, CKF_HW | CKF_GENERATE_KEY_PAIR))
        }
        CKM_GOSTR3411_12_256 | CKM_GOSTR3411_12_512 if caps.gost => {
            Some(MechInfo::new(0, 0, CKF_DIGEST))
        }
        _ => None,
    }
}

fn all_mechs() -> Vec<CK_MECHANISM_TYPE> {
    let mut v = Vec::new();
    v.extend_from_slice(RSA_SIGN);
    v.extend_from_slice(EC_SIGN);
    v.extend_from_slice(GOST_SIGN);
    v.extend_from_slice(&[
        CKM_RSA_PKCS_OAEP,
        CKM_ECDH1_DERIVE,
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        CKM_EC_KEY_PAIR_GEN,
        CKM_GOSTR3410_KEY_PAIR_GEN,
        CKM_GOSTR3410_512_KEY_PAIR_GEN,
        CKM_GOSTR3411_12_256,
        CKM_GOSTR3411_12_512,
    ]);
    v
}

impl CardToken {
    fn key_of(&self, obj: ObjectId, class: CK_OBJECT_CLASS) -> Result<(CardKey, Template)> {
        let st = lock(&self.inner.st);
        let o = st
            .objects
            .iter()
            .find(|o| o.id == obj)
            .ok_or(Error::new(CKR_KEY_HANDLE_INVALID))?;
        if o.class != class {
            return Err(Error::new(CKR_KEY_TYPE_INCONSISTENT));
        }
        let k = st
            .contents
            .keys
            .iter()
            .find(|k| k.id == o.ckaid)
            .ok_or(Error::new(CKR_KEY_HANDLE_INVALID))?;
        Ok((k.clone(), o.attrs.clone()))
    }

    fn require_user(&self, key: &CardKey) -> Result<u64> {
        let lgen = self.inner.login_gen.load(Ordering::SeqCst);
        if key.login_required && !self.inner.logged_in_user() {
            return Err(Error::new(CKR_USER_NOT_LOGGED_IN));
        }
        Ok(lgen)
    }

    fn admin_for(&self, m: &Mechanism) -> AdminAuth {
        match &m.param {
            MechParam::Bytes(b) if matches!(b.len(), 16 | 24 | 32) => AdminAuth {
                management_key: Some(Zeroizing::new(b.clone())),
            },
            _ => self.inner.opts.admin.clone(),
        }
    }

    fn update_contents(&self, f: impl FnOnce(&mut Contents)) {
        let mut st = lock(&self.inner.st);
        f(&mut st.contents);
        rebuild(&mut st);
        if let Some(cache) = &self.inner.opts.cache {
            if !self.inner.ident.unique.is_empty() {
                let key = [self.inner.atr.as_slice(), &self.inner.ident.unique].concat();
                lock(cache).insert(key, st.contents.clone());
            }
        }
    }
}

impl Token for CardToken {
    fn info(&self) -> TokenInfo {
        let st = lock(&self.inner.st);
        let p = self.inner.profile;
        let id = &self.inner.ident;
        let unsupported = p.name() == "unsupported";
        let mut flags = CKF_TOKEN_INITIALIZED;
        if unsupported {
            flags |= CKF_WRITE_PROTECTED;
        } else {
            flags |= CKF_USER_PIN_INITIALIZED | CKF_LOGIN_REQUIRED;
            if self.has_pinpad() {
                flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
            }
            let pin_flags = |s: &PinStatus, failed: bool, max: Option<u8>, low, last, locked| {
                let mut f = 0;
                if s.blocked {
                    f |= locked;
                } else if let Some(t) = s.tries_left {
                    if t == 1 {
                        f |= last;
                    }
                    if failed || max.is_some_and(|m| t < m) {
                        f |= low;
                    }
                } else if failed {
                    f |= low;
                }
                f
            };
            flags |= pin_flags(
                &st.user_pin,
                st.user_failed,
                st.user_pin.max_tries.or(p.max_tries(PinRole::User)),
                CKF_USER_PIN_COUNT_LOW,
                CKF_USER_PIN_FINAL_TRY,
                CKF_USER_PIN_LOCKED,
            );
            flags |= pin_flags(
                &st.so_pin,
                st.so_failed,
                st.so_pin.max_tries.or(p.max_tries(PinRole::So)),
                CKF_SO_PIN_COUNT_LOW,
                CKF_SO_PIN_FINAL_TRY,
                CKF_SO_PIN_LOCKED,
            );
        }
        let (min, max) = p.pin_len();
        TokenInfo {
            label: id.label.clone(),
            manufacturer: id.manufacturer.clone(),
            model: id.model.clone(),
            serial: id.serial.chars().take(16).collect(),
            flags,
            max_pin_len: max as CK_ULONG,
            min_pin_len: min as CK_ULONG,
            ..TokenInfo::default()
        }
    }

    fn alive(&self) -> bool {
        self.inner.alive.load(Ordering::SeqCst)
    }

    fn mechanism_list(&self) -> Vec<CK_MECHANISM_TYPE> {
        let caps = self.inner.profile.caps();
        all_mechs()
            .into_iter()
            .filter(|m| mech_info(*m, &caps).is_some())
            .collect()
    }

    fn mechanism_info(&self, mech: CK_MECHANISM_TYPE) -> Result<MechInfo> {
        mech_info(mech, &self.inner.profile.caps()).ok_or(Error::mechanism_invalid())
    }

    fn login(&self, user: UserType, pin: Option<&Pin>) -> Result<()> {
        let r = role(user)?;
        {
            let st = lock(&self.inner.st);
            match st.login {
                Some(u) if u == user => return Err(Error::new(CKR_USER_ALREADY_LOGGED_IN)),
                Some(_) => return Err(Error::new(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
                None => {}
            }
        }
        if pin.is_none() && !(self.has_pinpad() && r == PinRole::User) {
            return Err(Error::args("NULL PIN without a PIN pad"));
        }
        let pad = self.inner.pinpad;
        let mut pin_result = None;
        let res = self.inner.with_card(false, |ch, p| {
            let v = match pin {
                Some(pin) => p.verify_pin(ch, r, pin),
                None => p.verify_pin_pad(ch, r, &pad),
            };
            pin_result = Some(v.clone());
            v
        });
        if let Some(pr) = &pin_result {
            self.inner.note_pin(r, pr);
        }
        res?;
        let mut st = lock(&self.inner.st);
        st.login = Some(user);
        if user == UserType::So {
            st.so_secret = pin.cloned();
        }
        log::info!("{}: logged in as {user:?}", self.inner.reader);
        Ok(())
    }

    fn logout(&self) -> Result<()> {
        if lock(&self.inner.st).login.is_none() {
            return Err(Error::new(CKR_USER_NOT_LOGGED_IN));
        }
        self.inner.drop_login("logout");
        // Reset the card's security status too (best effort: the card may be gone).
        let _ = self.inner.with_card(false, |ch, p| p.logout(ch));
        Ok(())
    }

    fn login_state(&self) -> Option<UserType> {
        lock(&self.inner.st).login
    }

    fn init_pin(&self, pin: Option<&Pin>) -> Result<()> {
        let (login, secret) = {
            let st = lock(&self.inner.st);
            (st.login, st.so_secret.clone())
        };
        if login != Some(UserType::So) {
            return Err(Error::new(CKR_USER_NOT_LOGGED_IN));
        }
        let new = pin.ok_or(Error::args("C_InitPIN on a PIN pad is not supported"))?;
        let secret = secret.unwrap_or_else(|| Pin::new(b""));
        let mut pin_result = None;
        let r = self.inner.with_card(true, |ch, p| {
            let v = p.unblock_pin(ch, &secret, new);
            pin_result = Some(v.clone());
            v
        });
        if let Some(Err(e)) = &pin_result {
            self.inner.note_pin(PinRole::So, &Err(e.clone()));
        }
        r?;
        let mut st = lock(&self.inner.st);
        let max = st
            .user_pin
            .max_tries
            .or(self.inner.profile.max_tries(PinRole::User));
        st.user_pin = PinStatus {
            verified: false,
            tries_left: max,
            blocked: false,
            max_tries: st.user_pin.max_tries,
        };
        st.user_failed = false;
        Ok(())
    }

    fn set_pin(&self, old: Option<&Pin>, new: Option<&Pin>) -> Result<()> {
        let login = lock(&self.inner.st).login;
        let r = if login == Some(UserType::So) {
            PinRole::So
        } else {
            PinRole::User
        };
        let pad = self.inner.pinpad;
        let mut pin_result = None;
        let res = self.inner.with_card(false, |ch, p| {
            let v = match (old, new) {
                (Some(o), Some(n)) => p.change_pin(ch, r, o, n),
                (None, None) if pad.modify.is_some() => p.change_pin_pad(ch, r, &pad),
                _ => Err(CardError::Ck(Error::args("both PINs or neither (PIN pad)"))),
            };
            pin_result = Some(v.clone());
            v
        });
        if let Some(pr) = &pin_result {
            self.inner.note_pin(r, pr);
        }
        res?;
        if r == PinRole::So {
            lock(&self.inner.st).so_secret = new.cloned();
        }
        Ok(())
    }

    fn session_closed(&self, session: CK_SESSION_HANDLE) {
        lock(&self.inner.st)
            .objects
            .retain(|o| o.session != Some(session));
    }

    fn create_object(&self, s: &SessionCtx, t: &Template) -> Result<ObjectId> {
        let class = t
            .get_ulong(CKA_CLASS)?
            .ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?;
        if class != CKO_CERTIFICATE
            || t.get_ulong(CKA_CERTIFICATE_TYPE)?.unwrap_or(CKC_X_509) != CKC_X_509
        {
            return Err(Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "a card stores X.509 certificates only",
            ));
        }
        if t.get_bool(CKA_TOKEN)? != Some(true) {
            return Err(Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "certificates on a card are token objects (CKA_TOKEN = true)",
            ));
        }
        if !s.rw {
            return Err(Error::new(CKR_SESSION_READ_ONLY));
        }
        if lock(&self.inner.st).login.is_none() {
            return Err(Error::new(CKR_USER_NOT_LOGGED_IN));
        }
        if !self.inner.profile.caps().write_cert {
            return Err(Error::not_supported());
        }
        let der = t
            .get(CKA_VALUE)
            .ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?;
        let id = t.get(CKA_ID).ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?;
        host::certificate_attributes(der)?;
        let admin = self.inner.opts.admin.clone();
        let (cert, refreshed) = self.inner.with_card(true, |ch, p| {
            let cert = p.write_certificate(ch, id, der, &admin)?;
            let st_has_key = lock(&self.inner.st)
                .contents
                .keys
                .iter()
                .any(|k| k.id == cert.id);
            let refreshed = if st_has_key {
                None
            } else {
                Some(p.read_contents(ch)?)
            };
            Ok((cert, refreshed))
        })?;
        let cid = cert.id.clone();
        self.update_contents(|c| match refreshed {
            Some(all) => *c = all,
            None => {
                c.certs.retain(|x| x.id != cert.id);
                c.certs.push(cert);
            }
        });
        let st = lock(&self.inner.st);
        st.ids
            .get(&(CKO_CERTIFICATE, cid))
            .copied()
            .ok_or(Error::general("certificate object missing after write"))
    }

    fn get_attributes(
        &self,
        s: &SessionCtx,
        obj: ObjectId,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrRead>> {
        let _ = s;
        let st = lock(&self.inner.st);
        let o = st
            .objects
            .iter()
            .find(|o| o.id == obj)
            .ok_or(Error::new(CKR_OBJECT_HANDLE_INVALID))?;
        let sensitive_secret = o.class == CKO_SECRET_KEY
            && (o.attrs.get_bool(CKA_SENSITIVE)? == Some(true)
                || o.attrs.get_bool(CKA_EXTRACTABLE)? == Some(false));
        Ok(types
            .iter()
            .map(|&ty| {
                if is_secret_attr(o.class, ty) || (sensitive_secret && ty == CKA_VALUE) {
                    AttrRead::Sensitive
                } else {
                    match o.attrs.get(ty) {
                        Some(v) => AttrRead::Value(Zeroizing::new(v.to_vec())),
                        None => AttrRead::Invalid,
                    }
                }
            })
            .collect())
    }

    fn find_objects(&self, _s: &SessionCtx, template: &Template) -> Result<Vec<ObjectId>> {
        let st = lock(&self.inner.st);
        let user = st.login == Some(UserType::User);
        Ok(st
            .objects
            .iter()
            .filter(|o| user || !o.private)
            .filter(|o| o.attrs.matches_search(template))
            .map(|o| o.id)
            .collect())
    }

    fn sign_init(&self, _s: &SessionCtx, m: &Mechanism, key: ObjectId) -> Result<Box<dyn SignOp>> {
        let (k, _) = self.key_of(key, CKO_PRIVATE_KEY)?;
        if !k.sign {
            return Err(Error::new(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let prep = prep_for(m, k.kind)?;
        let lgen = self.require_user(&k)?;
        Ok(Box::new(CardSignOp {
            inner: self.inner.clone(),
            hasher: prep.hash.map(host::digest_op).transpose()?,
            key: k,
            prep,
            data: Zeroizing::new(Vec::new()),
            lgen,
            ctx: None,
        }))
    }

    fn verify_init(
        &self,
        _s: &SessionCtx,
        m: &Mechanism,
        key: ObjectId,
    ) -> Result<Box<dyn VerifyOp>> {
        let (_, attrs) = self.key_of(key, CKO_PUBLIC_KEY)?;
        let imp = klyuch_crypto::find(m.ty).ok_or(Error::mechanism_invalid())?;
        let k = klyuch_crypto::Key::from_attributes(&attrs)?;
        imp.verify_init(Arc::new(k), &m.param)
    }

    fn encrypt_init(
        &self,
        _s: &SessionCtx,
        m: &Mechanism,
        key: ObjectId,
    ) -> Result<Box<dyn CipherOp>> {
        let (_, attrs) = self.key_of(key, CKO_PUBLIC_KEY)?;
        let imp = klyuch_crypto::find(m.ty).ok_or(Error::mechanism_invalid())?;
        let k = klyuch_crypto::Key::from_attributes(&attrs)?;
        imp.encrypt_init(Arc::new(k), &m.param)
    }

    fn decrypt_init(
        &self,
        _s: &SessionCtx,
        m: &Mechanism,
        key: ObjectId,
    ) -> Result<Box<dyn CipherOp>> {
        let (k, _) = self.key_of(key, CKO_PRIVATE_KEY)?;
        if !k.decrypt {
            return Err(Error::new(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        if !matches!(k.kind, KeyKind::Rsa { .. }) {
            return Err(Error::new(CKR_KEY_TYPE_INCONSISTENT));
        }
        let unpad = match (m.ty, &m.param) {
            (CKM_RSA_PKCS, _) => Unpad::Pkcs1,
            (CKM_RSA_X_509, _) => Unpad::Raw,
            (CKM_RSA_PKCS_OAEP, MechParam::RsaOaep { hash, mgf, source }) => {
                if host::digest_len(*hash).is_none() {
                    return Err(Error::new(CKR_MECHANISM_PARAM_INVALID));
                }
                Unpad::Oaep {
                    hash: *hash,
                    mgf: *mgf,
                    label: source.clone(),
                }
            }
            (CKM_RSA_PKCS_OAEP, _) => return Err(Error::new(CKR_MECHANISM_PARAM_INVALID)),
            _ => return Err(Error::mechanism_invalid()),
        };
        let lgen = self.require_user(&k)?;
        Ok(Box::new(CardDecryptOp {
            inner: self.inner.clone(),
            key: k,
            unpad,
            data: Zeroizing::new(Vec::new()),
            lgen,
            ctx: None,
        }))
    }

    fn digest_init(&self, _s: &SessionCtx, m: &Mechanism) -> Result<Box<dyn DigestOp>> {
        if mech_info(m.ty, &self.inner.profile.caps()).is_none_or(|i| i.flags & CKF_DIGEST == 0) {
            return Err(Error::mechanism_invalid());
        }
        host::digest_op(m.ty)
    }

    fn generate_key_pair(
        &self,
        s: &SessionCtx,
        m: &Mechanism,
        public: &Template,
        private: &Template,
    ) -> Result<(ObjectId, ObjectId)> {
        let caps = self.inner.profile.caps();
        if !caps.keygen || mech_info(m.ty, &caps).is_none() {
            return Err(Error::mechanism_invalid());
        }
        if !s.rw {
            return Err(Error::new(CKR_SESSION_READ_ONLY));
        }
        if lock(&self.inner.st).login != Some(UserType::User) {
            return Err(Error::new(CKR_USER_NOT_LOGGED_IN));
        }
        let get = |ty| public.get(ty).or_else(|| private.get(ty));
        let spec = match m.ty {
            CKM_RSA_PKCS_KEY_PAIR_GEN => {
                let bits = public
                    .get_ulong(CKA_MODULUS_BITS)?
                    .ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?;
                if let Some(e) = public.get(CKA_PUBLIC_EXPONENT) {
                    if host::unsigned(e) != [1, 0, 1] {
                        return Err(Error::with(
                            CKR_ATTRIBUTE_VALUE_INVALID,
                            "the card uses the public exponent 65537",
                        ));
                    }
                }
                KeySpec::Rsa {
                    bits: bits as usize,
                }
            }
            CKM_EC_KEY_PAIR_GEN => {
                let params = get(CKA_EC_PARAMS).ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?;
                match klyuch_crypto::curve_from_params(params)? {
                    klyuch_crypto::Curve::P256 => KeySpec::EcP256,
                    klyuch_crypto::Curve::P384 => KeySpec::EcP384,
                    _ => return Err(Error::new(CKR_CURVE_NOT_SUPPORTED)),
                }
            }
            CKM_GOSTR3410_KEY_PAIR_GEN => KeySpec::Gost256 {
                paramset: host::oid_content(
                    get(CKA_GOSTR3410_PARAMS).ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?,
                )?,
            },
            CKM_GOSTR3410_512_KEY_PAIR_GEN => KeySpec::Gost512 {
                paramset: host::oid_content(
                    get(CKA_GOSTR3410_PARAMS).ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?,
                )?,
            },
            _ => return Err(Error::mechanism_invalid()),
        };
        let want_id = private.get(CKA_ID).or_else(|| public.get(CKA_ID));
        let (card_ref, id) = {
            let st = lock(&self.inner.st);
            self.inner
                .profile
                .key_ref_for_id(want_id, &st.contents)
                .map_err(Error::from)?
        };
        let admin = self.admin_for(m);
        let key = self
            .inner
            .with_card(true, |ch, p| p.generate(ch, card_ref, &id, &spec, &admin))?;
        log::info!(
            "{}: generated a {:?} key at {card_ref:02X}",
            self.inner.reader,
            key.kind
        );
        let kid = key.id.clone();
        self.update_contents(|c| {
            c.keys.retain(|k| k.id != kid);
            c.certs.retain(|x| x.id != kid);
            c.keys.push(key);
        });
        let st = lock(&self.inner.st);
        let pubid = st.ids.get(&(CKO_PUBLIC_KEY, kid.clone())).copied();
        let privid = st.ids.get(&(CKO_PRIVATE_KEY, kid)).copied();
        match (pubid, privid) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(Error::general("key objects missing after generation")),
        }
    }

    fn derive_key(
        &self,
        s: &SessionCtx,
        m: &Mechanism,
        base: ObjectId,
        t: &Template,
    ) -> Result<ObjectId> {
        if m.ty != CKM_ECDH1_DERIVE {
            return Err(Error::mechanism_invalid());
        }
        let (k, _) = self.key_of(base, CKO_PRIVATE_KEY)?;
        if !k.derive {
            return Err(Error::new(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let MechParam::Ecdh1 {
            kdf, public_data, ..
        } = &m.param
        else {
            return Err(Error::new(CKR_MECHANISM_PARAM_INVALID));
        };
        if *kdf != CKD_NULL {
            return Err(Error::with(
                CKR_MECHANISM_PARAM_INVALID,
                "only CKD_NULL: the card returns the raw shared secret",
            ));
        }
        // The peer point raw (04 || X || Y) or DER OCTET STRING-wrapped (PKCS#11 allows both).
        let field = k.kind.sig_len() / 2;
        let peer = if public_data.len() == 2 * field + 1 {
            public_data.clone()
        } else {
            match host::octet_string_content(public_data) {
                Some(p) if p.len() == 2 * field + 1 => p,
                _ => return Err(Error::new(CKR_MECHANISM_PARAM_INVALID)),
            }
        };
        if t.get_bool(CKA_TOKEN)? == Some(true) {
            return Err(Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "derived keys are session objects on a card",
            ));
        }
        let lgen = self.require_user(&k)?;
        check_login(&self.inner, &k, lgen)?;
        let secret = self
            .inner
            .with_card(k.login_required, |ch, p| p.derive(ch, &k, &peer))?;
        let len = match t.get_ulong(CKA_VALUE_LEN)? {
            Some(l) => usize::try_from(l).map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID))?,
            None => secret.len(),
        };
        if len == 0 || len > secret.len() {
            return Err(Error::new(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        let mut a = t.clone();
        a.set_default(CKA_CLASS, CKO_SECRET_KEY.to_ne_bytes().to_vec());
        a.set_default(CKA_KEY_TYPE, CKK_GENERIC_SECRET.to_ne_bytes().to_vec());
        a.set(CKA_VALUE, secret[..len].to_vec());
        a.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
        a.set_bool(CKA_TOKEN, false);
        a.set_bool(CKA_LOCAL, false);
        a.set_default(CKA_PRIVATE, vec![1]);
        a.set_default(CKA_SENSITIVE, vec![0]);
        a.set_default(CKA_EXTRACTABLE, vec![1]);
        a.set_bool(CKA_ALWAYS_SENSITIVE, false);
        a.set_bool(CKA_NEVER_EXTRACTABLE, false);
        a.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
        let mut st = lock(&self.inner.st);
        let id = st.next_id;
        st.next_id += 1;
        st.objects.push(Obj {
            id,
            class: CKO_SECRET_KEY,
            ckaid: a.get(CKA_ID).unwrap_or_default().to_vec(),
            private: a.get_bool(CKA_PRIVATE)?.unwrap_or(true),
            attrs: a,
            session: Some(s.handle),
        });
        Ok(id)
    }

    fn generate_random(&self, out: &mut [u8]) -> Result<()> {
        getrandom::fill(out).map_err(|_| Error::new(CKR_FUNCTION_FAILED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparation_of_card_input() {
        let rsa = KeyKind::Rsa { bits: 2048 };
        let prep = prep_for(&Mechanism::new(CKM_SHA256_RSA_PKCS), rsa).unwrap();
        assert_eq!(prep.hash, Some(CKM_SHA256));
        let b = prepare(prep, rsa, &[0xAA; 32]).unwrap();
        assert_eq!(b.len(), 256);
        assert_eq!(&b[..2], &[0, 1]);
        // the DigestInfo of SHA-256 (RFC 8017 §9.2 note 1) before the hash
        assert_eq!(
            hex::encode(&b[256 - 51..256 - 32]),
            "3031300d060960864801650304020105000420"
        );
        let pss = Mechanism::with(
            CKM_SHA256_RSA_PKCS_PSS,
            MechParam::RsaPss {
                hash: CKM_SHA384,
                mgf: CKG_MGF1_SHA256,
                salt_len: 32,
            },
        );
        assert_eq!(
            prep_for(&pss, rsa).unwrap_err().rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
        let ec = prep_for(&Mechanism::new(CKM_ECDSA), KeyKind::EcP256).unwrap();
        let e = prepare(ec, KeyKind::EcP256, &[1; 48]).unwrap();
        assert_eq!(e, vec![1; 32]);
        let e = prepare(ec, KeyKind::EcP384, &[1; 32]).unwrap();
        assert_eq!(&e[..16], &[0; 16]);
        let g = prep_for(
            &Mechanism::new(CKM_GOSTR3410_WITH_GOSTR3411_12_256),
            KeyKind::Gost256,
        )
        .unwrap();
        assert_eq!(g.hash, Some(CKM_GOSTR3411_12_256));
        assert!(prepare(g, KeyKind::Gost256, &[0; 31]).is_err());
        assert_eq!(
            prep_for(&Mechanism::new(CKM_ECDSA), rsa).unwrap_err().rv(),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            prep_for(&Mechanism::new(CKM_GOSTR3410_512), KeyKind::Gost256)
                .unwrap_err()
                .rv(),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            prep_for(&Mechanism::new(CKM_AES_ECB), KeyKind::EcP256)
                .unwrap_err()
                .rv(),
            CKR_MECHANISM_INVALID
        );
    }
}
