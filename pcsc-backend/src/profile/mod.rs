//! Card profiles: what a card application looks like to Klyuch. A profile knows one card
//! family's command set; the token (`token.rs`) turns it into PKCS#11 (objects, mechanisms,
//! PIN rules, host-side hashing and padding).
//!
//! **Adding a card** = one file in this folder implementing [`CardProfile`] plus one line in
//! [`PROFILES`]. See `docs/adding-a-card.md`.

pub mod gost;
pub mod piv;
pub mod unsupported;

use crate::apdu::{CardError, CardResult, Sw};
use crate::host::KeyKind;
use crate::pinpad::{self, PinFormat, PinPad};
use crate::transport::Channel;
use token_api::{Pin, Template};
use zeroize::Zeroizing;

/// The registry, in probing order. A profile whose [`CardProfile::atr_match`] says
/// [`AtrMatch::Yes`] is probed first; then the others that do not say `No`, in this order.
/// The generic fallback (an "unsupported card" token with no objects) is last and always
/// matches.
pub static PROFILES: &[&dyn CardProfile] = &[
    &piv::Piv,
    &gost::GostToken,
    // vendors: add `&yourcard::YourCard,` here
    &unsupported::Unsupported,
];

/// What the ATR says about a card.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AtrMatch {
    /// Certainly this profile's card (still probed, which also selects the application).
    Yes,
    /// Cannot tell from the ATR: probe.
    Maybe,
    /// Certainly not: do not send it anything.
    No,
}

/// Which PIN.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PinRole {
    /// The PKCS#11 user PIN.
    User,
    /// The PKCS#11 SO PIN (PIV: the PUK; GOST token: the admin PIN).
    So,
}

/// A PIN's state as the card reports it without spending a try.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PinStatus {
    pub verified: bool,
    pub tries_left: Option<u8>,
    pub blocked: bool,
    /// The counter's maximum when the card tells it (YubiKey GET METADATA); else the profile's
    /// [`CardProfile::max_tries`] applies.
    pub max_tries: Option<u8>,
}

impl PinStatus {
    /// Interpret the answer to an empty VERIFY (ISO 7816-4 §11.5.6: "if the command data field
    /// is absent, the card returns 9000 if verified, else 63Cx with the retry counter").
    pub fn from_sw(sw: Sw) -> CardResult<PinStatus> {
        Ok(match sw {
            Sw::Ok => PinStatus {
                verified: true,
                ..Default::default()
            },
            Sw::VerifyFailed { tries_left: 0 } | Sw::AuthMethodBlocked => PinStatus {
                tries_left: Some(0),
                blocked: true,
                ..Default::default()
            },
            Sw::VerifyFailed { tries_left } => PinStatus {
                tries_left: Some(tries_left),
                ..Default::default()
            },
            Sw::VerifyFailedNoCount => PinStatus::default(),
            other => return Err(CardError::Sw(other)),
        })
    }
}

/// Identity of a card: for the token info and the object cache key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CardIdent {
    /// `CK_TOKEN_INFO.label` (32 bytes max).
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    /// `CK_TOKEN_INFO.serialNumber` (16 bytes max).
    pub serial: String,
    /// Unique bytes of this card (CHUID GUID/FASC-N, serial number); combined with the ATR as
    /// the key of the object cache. Empty = do not cache across insertions.
    pub unique: Vec<u8>,
}

/// A private key on the card (its public half comes from a certificate or from key generation).
#[derive(Clone, Debug)]
pub struct CardKey {
    /// `CKA_ID` (shared with the certificate and the public key object).
    pub id: Vec<u8>,
    /// The card's key reference (PIV: `9A`..; GOST token: 1..8).
    pub card_ref: u8,
    pub kind: KeyKind,
    /// Labels of the private and public key objects.
    pub label: String,
    pub pub_label: String,
    /// Public key object attributes (`CKA_KEY_TYPE` and components; see `host.rs`).
    pub public: Template,
    pub sign: bool,
    pub decrypt: bool,
    pub derive: bool,
    pub always_authenticate: bool,
    /// The key needs the user PIN (`CKA_PRIVATE`); PIV's card authentication key does not.
    pub login_required: bool,
    /// Generated on the card (`CKA_LOCAL`) as far as we know.
    pub local: bool,
}

/// A certificate on the card.
#[derive(Clone, Debug)]
pub struct CardCert {
    pub id: Vec<u8>,
    pub label: String,
    pub der: Vec<u8>,
}

/// Everything a profile reads from a card once per card (cached).
#[derive(Clone, Debug, Default)]
pub struct Contents {
    pub keys: Vec<CardKey>,
    pub certs: Vec<CardCert>,
}

/// A key to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpec {
    Rsa {
        bits: usize,
    },
    EcP256,
    EcP384,
    /// GOST R 34.10-2012 with a parameter set (OID contents, no tag/length).
    Gost256 {
        paramset: Vec<u8>,
    },
    Gost512 {
        paramset: Vec<u8>,
    },
}

/// What a profile can do, for the mechanism list.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caps {
    pub rsa: bool,
    pub ec: bool,
    pub gost: bool,
    pub decrypt: bool,
    pub derive: bool,
    pub keygen: bool,
    pub write_cert: bool,
}

/// Secrets for administrative card operations other than PINs (PIV: the card management key).
#[derive(Clone, Default)]
pub struct AdminAuth {
    pub management_key: Option<Zeroizing<Vec<u8>>>,
}

fn unsupported<T>() -> CardResult<T> {
    Err(CardError::Ck(token_api::Error::not_supported()))
}

/// One card family. Every method runs inside a PC/SC transaction that the token opened; the
/// application is selected (after [`CardProfile::probe`] or [`CardProfile::select`]).
/// Optional operations default to `CKR_FUNCTION_NOT_SUPPORTED`.
pub trait CardProfile: Send + Sync {
    /// Short name for logs ("piv", "gost").
    fn name(&self) -> &'static str;

    /// A first look at the ATR (no I/O).
    fn atr_match(&self, _atr: &[u8]) -> AtrMatch {
        AtrMatch::Maybe
    }

    /// A cheap check that the card has this application, usually its SELECT. True = this
    /// profile takes the card (and the application is now selected).
    fn probe(&self, ch: &mut Channel<'_>) -> CardResult<bool>;

    /// Select the application again (after a reset by another program).
    fn select(&self, ch: &mut Channel<'_>) -> CardResult<()> {
        if self.probe(ch)? {
            Ok(())
        } else {
            Err(CardError::Sw(Sw::NotFound))
        }
    }

    /// Label, serial and the unique bytes of the card (few APDUs).
    fn identify(&self, ch: &mut Channel<'_>) -> CardResult<CardIdent>;

    /// Read keys and certificates (once per card; the token caches the result).
    fn read_contents(&self, ch: &mut Channel<'_>) -> CardResult<Contents>;

    fn caps(&self) -> Caps;

    /// PIN length bounds for `CK_TOKEN_INFO`.
    fn pin_len(&self) -> (usize, usize) {
        (4, 8)
    }

    /// The retry counter maximum, when the profile knows it (for `CKF_USER_PIN_COUNT_LOW`).
    fn max_tries(&self, _role: PinRole) -> Option<u8> {
        None
    }

    /// How the card wants a PIN on the wire, for PIN-pad readers (`None` = no pad support).
    fn pin_format(&self, _role: PinRole) -> Option<PinFormat> {
        None
    }

    /// The PIN state without spending a try (empty VERIFY); `None` if the card cannot tell.
    fn pin_status(&self, _ch: &mut Channel<'_>, _role: PinRole) -> CardResult<Option<PinStatus>> {
        Ok(None)
    }

    /// VERIFY the PIN. Errors carry the status word (`63Cx`, `6983`).
    fn verify_pin(&self, ch: &mut Channel<'_>, role: PinRole, pin: &Pin) -> CardResult<()>;

    /// VERIFY on the reader's PIN pad (the default builds a `PIN_VERIFY_STRUCTURE` from
    /// [`CardProfile::pin_format`]).
    fn verify_pin_pad(&self, ch: &mut Channel<'_>, role: PinRole, pad: &PinPad) -> CardResult<()> {
        let (Some(code), Some(f)) = (pad.verify, self.pin_format(role)) else {
            return unsupported();
        };
        let s = pinpad::verify_structure(&f)?;
        pinpad::run(ch, code, &s)?.ok().map(|_| ())
    }

    /// CHANGE REFERENCE DATA on the PIN pad.
    fn change_pin_pad(&self, ch: &mut Channel<'_>, role: PinRole, pad: &PinPad) -> CardResult<()> {
        let (Some(code), Some(f)) = (pad.modify, self.pin_format(role)) else {
            return unsupported();
        };
        let s = pinpad::modify_structure(&f)?;
        pinpad::run(ch, code, &s)?.ok().map(|_| ())
    }

    /// Log the PINs out on the card (security status reset).
    fn logout(&self, _ch: &mut Channel<'_>) -> CardResult<()> {
        Ok(())
    }

    fn change_pin(
        &self,
        _ch: &mut Channel<'_>,
        _role: PinRole,
        _old: &Pin,
        _new: &Pin,
    ) -> CardResult<()> {
        unsupported()
    }

    /// Unblock and set the user PIN with the SO secret (PIV: PUK; GOST token: admin PIN, which
    /// the token verified at SO login).
    fn unblock_pin(&self, _ch: &mut Channel<'_>, _so_secret: &Pin, _new: &Pin) -> CardResult<()> {
        unsupported()
    }

    /// Sign with the card's raw primitive. `input` is prepared by the token: RSA = the full
    /// modulus-length block (padding done on the host); EC = the hash, padded or truncated to the
    /// field size; GOST = the digest. Returns the PKCS#11 signature format (RSA block,
    /// EC `r || s`, GOST `s || r`).
    fn sign(&self, _ch: &mut Channel<'_>, _key: &CardKey, _input: &[u8]) -> CardResult<Vec<u8>> {
        unsupported()
    }

    /// Raw RSA decryption of a modulus-length block.
    fn decrypt(
        &self,
        _ch: &mut Channel<'_>,
        _key: &CardKey,
        _input: &[u8],
    ) -> CardResult<Zeroizing<Vec<u8>>> {
        unsupported()
    }

    /// ECDH: the shared secret (x coordinate) with the peer's uncompressed point.
    fn derive(
        &self,
        _ch: &mut Channel<'_>,
        _key: &CardKey,
        _peer: &[u8],
    ) -> CardResult<Zeroizing<Vec<u8>>> {
        unsupported()
    }

    /// The key reference for a `CKA_ID` (or the first free one when `None`).
    fn key_ref_for_id(
        &self,
        _id: Option<&[u8]>,
        _contents: &Contents,
    ) -> CardResult<(u8, Vec<u8>)> {
        unsupported()
    }

    /// Generate a key pair on the card at `card_ref`; returns the new key (no certificate yet).
    fn generate(
        &self,
        _ch: &mut Channel<'_>,
        _card_ref: u8,
        _id: &[u8],
        _spec: &KeySpec,
        _admin: &AdminAuth,
    ) -> CardResult<CardKey> {
        unsupported()
    }

    /// Store a certificate for the key with `CKA_ID` `id`.
    fn write_certificate(
        &self,
        _ch: &mut Channel<'_>,
        _id: &[u8],
        _der: &[u8],
        _admin: &AdminAuth,
    ) -> CardResult<CardCert> {
        unsupported()
    }
}

/// Choose the profile for a card: ATR first, then probes (see [`PROFILES`]).
pub fn choose(atr: &[u8], ch: &mut Channel<'_>) -> CardResult<&'static dyn CardProfile> {
    let yes = PROFILES
        .iter()
        .filter(|p| p.atr_match(atr) == AtrMatch::Yes);
    let maybe = PROFILES
        .iter()
        .filter(|p| p.atr_match(atr) == AtrMatch::Maybe);
    for p in yes.chain(maybe) {
        match p.probe(ch) {
            Ok(true) => {
                log::debug!("card profile: {}", p.name());
                return Ok(*p);
            }
            Ok(false) => {}
            Err(e @ (CardError::Removed | CardError::Reset)) => return Err(e),
            Err(e) => log::debug!("profile {} probe: {e}", p.name()),
        }
    }
    Ok(&unsupported::Unsupported)
}

/// Pad a PIN to a fixed block with a pad byte (PIV: 8 bytes `FF`, SP 800-73-4 Part 2 §3.2.1;
/// GOST token: 16 bytes `FF`). Too long or empty → `CKR_PIN_LEN_RANGE`.
pub fn pin_block(pin: &[u8], len: usize, pad: u8, min: usize) -> CardResult<Zeroizing<Vec<u8>>> {
    if pin.len() < min || pin.len() > len {
        return Err(CardError::Ck(token_api::Error::new(
            token_api::ck::CKR_PIN_LEN_RANGE,
        )));
    }
    let mut b = Zeroizing::new(Vec::with_capacity(len));
    b.extend_from_slice(pin);
    b.resize(len, pad);
    Ok(b)
}
